import {BaseCommand} from '../cli/base-command.js'

export default class Version extends BaseCommand<typeof Version> {
  static override summary = 'print the version of mooncake and of its native engine'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json']

  async run(): Promise<{version: string; node: string; nativeAbi: number | null}> {
    const {loadNative} = await import('../lib/transfer/native.js')
    let nativeAbi: number | null = null
    try {
      nativeAbi = loadNative().abiVersion()
    } catch {}
    const result = {version: this.config.version, node: process.version, nativeAbi}
    this.log(`mooncake ${result.version} (node ${result.node}, native ABI ${nativeAbi ?? 'missing'})`)
    return result
  }
}
