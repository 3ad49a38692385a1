import {MooncakeError} from '../errors.js'
import {callNative} from './native-call.js'
import {loadNative} from './native.js'

/** Largest window handed to JS at once (segment memory itself may exceed 4 GiB). */
export const MAX_WINDOW = 1 << 30

/**
 * A shared-memory segment owned by this process: pre-faulted, served by the engine's server,
 * mappable by same-host peers. Memory stays native; JS sees bounded windows of it.
 */
export class Segment {
  readonly name: string
  readonly size: number
  /** The 32-byte key grants must be signed with, or undefined when the segment takes no grants. */
  readonly grantKey: Buffer | undefined
  /** The shared-memory file (under /dev/shm/mooncake). */
  readonly path: string
  #handle: number | undefined
  readonly #onClose: (segment: Segment) => void

  /** @internal created by TransferEngine.createSegment */
  constructor(init: {name: string; size: number; handle: number; path: string; grantKey?: Buffer; onClose: (s: Segment) => void}) {
    this.name = init.name
    this.size = init.size
    this.grantKey = init.grantKey
    this.path = init.path
    this.#handle = init.handle
    this.#onClose = init.onClose
  }

  get closed(): boolean {
    return this.#handle === undefined
  }

  /** @internal */
  nativeHandle(): number {
    if (this.#handle === undefined) throw new MooncakeError('SEGMENT_NOT_FOUND', `segment '${this.name}' is closed`)
    return this.#handle
  }

  /**
   * A Buffer over `[offset, offset+length)` of the segment, without copying (at most 1 GiB).
   * The memory stays valid while the Buffer is reachable, even after the segment is closed.
   */
  window(offset = 0, length = Math.min(this.size - offset, MAX_WINDOW)): Buffer {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || length > MAX_WINDOW || offset + length > this.size) {
      throw new MooncakeError('BUFFER_OVERFLOW', `window [${offset}, +${length}) is outside segment '${this.name}' of ${this.size} bytes or larger than 1 GiB`)
    }
    const handle = this.nativeHandle()
    return callNative(() => loadNative().segmentWindow(handle, offset, length))
  }

  /** Stops serving the segment and deletes its file; same as TransferEngine.closeSegment. */
  close(): void {
    if (this.#handle === undefined) return
    const handle = this.#handle
    this.#handle = undefined
    callNative(() => loadNative().segmentClose(handle))
    this.#onClose(this)
  }
}
