/** A deterministic PRNG for the random-message tests: a failure reproduces from its seed. */

/** xorshift32 from `seed`: `rnd` in [0, 1), `int(n)` in [0, n), `pick(xs)` one of `xs`. */
export function xorshift(seed: number) {
  let s = seed
  const rnd = (): number => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  return {rnd, int, pick}
}
