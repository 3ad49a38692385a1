// CRC32C by carry-less multiplication (VPCLMULQDQ on 512-bit registers): the message is folded
// 256 bytes at a time into four accumulators, which are then folded into one 128-bit value whose
// CRC the crc32 instruction finishes. About 3x the speed of three interleaved crc32 streams on
// data in cache; the copying variant moves the bytes through the same registers.
//
// Folding (reflected bit order, so the first byte of a block holds its highest powers): a 128-bit
// block A, D bits before the end of a later block B, contributes A(x)·x^D there. Split A into
// its first qword q0 (powers 127..64) and second q1 (63..0); with each constant held as a
// reflected 32-bit value, clmul(q, k) stands for R(q)·K(x)·x^33, so the constants are
// x^(D+31) mod P for q0 and x^(D-33) mod P for q1.
#include "crc32c_fold.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace mooncake {

#if defined(__x86_64__)
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;

// x^n mod P as a reflected 32-bit value (bit j holds the coefficient of x^(31-j)).
uint64_t XPowMod(uint32_t n) {
  uint32_t v = 0x80000000u;
  while (n--) v = (v >> 1) ^ ((v & 1) ? kPolyReflected : 0);
  return v;
}

struct FoldConstants {
  // Per 128-bit lane: {q0 constant, q1 constant} for folding forward by 2048, 512 and 128 bits.
  uint64_t by2048[2], by512[2], by128[2];
  FoldConstants() {
    Set(by2048, 2048);
    Set(by512, 512);
    Set(by128, 128);
  }
  static void Set(uint64_t* k, uint32_t bits) {
    k[0] = XPowMod(bits + 31);
    k[1] = XPowMod(bits - 33);
  }
};

const FoldConstants& Constants() {
  static const FoldConstants k;
  return k;
}

#define MOONCAKE_FOLD_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,vpclmulqdq,pclmul,sse4.2")))

MOONCAKE_FOLD_TARGET inline __m512i Fold(__m512i acc, __m512i k, __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(acc, k, 0x00), _mm512_clmulepi64_epi128(acc, k, 0x11), next, 0x96);
}

MOONCAKE_FOLD_TARGET inline __m128i Fold128(__m128i acc, __m128i k, __m128i next) {
  return _mm_ternarylogic_epi64(_mm_clmulepi64_si128(acc, k, 0x00), _mm_clmulepi64_si128(acc, k, 0x11), next, 0x96);
}

// The constant pair in all four 128-bit lanes.
MOONCAKE_FOLD_TARGET inline __m512i Lanes(const uint64_t* k) {
  const long long lo = static_cast<long long>(k[0]), hi = static_cast<long long>(k[1]);
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

// Mode: 0 checksum only, 1 copy to dst, 2 copy with non-temporal stores (dst 64-byte aligned).
template <int Mode>
MOONCAKE_FOLD_TARGET inline __m512i Take(const uint8_t* src, uint8_t* dst) {
  const __m512i v = _mm512_loadu_si512(src);
  if (Mode == 1) _mm512_storeu_si512(dst, v);
  if (Mode == 2) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), v);
  return v;
}

// Folds whole 256-byte blocks of `*len` bytes (at least 256); returns the raw register after
// them and advances src/dst/len past them.
template <int Mode>
MOONCAKE_FOLD_TARGET uint32_t FoldBlocks(uint32_t crc, uint8_t** dst, const uint8_t** src, size_t* len) {
  const FoldConstants& kc = Constants();
  const uint8_t* s = *src;
  uint8_t* d = *dst;
  size_t n = *len;
  __m512i x0 = Take<Mode>(s, d), x1 = Take<Mode>(s + 64, d + 64), x2 = Take<Mode>(s + 128, d + 128), x3 = Take<Mode>(s + 192, d + 192);
  // The running register enters as the message's first 4 bytes (x^32-scaled by the folding).
  x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128(int(crc))));
  s += 256;
  if (Mode) d += 256;
  n -= 256;
  const __m512i k2048 = Lanes(kc.by2048);
  while (n >= 256) {
    x0 = Fold(x0, k2048, Take<Mode>(s, d));
    x1 = Fold(x1, k2048, Take<Mode>(s + 64, d + 64));
    x2 = Fold(x2, k2048, Take<Mode>(s + 128, d + 128));
    x3 = Fold(x3, k2048, Take<Mode>(s + 192, d + 192));
    s += 256;
    if (Mode) d += 256;
    n -= 256;
  }
  const __m512i k512 = Lanes(kc.by512);
  x1 = Fold(x0, k512, x1);
  x2 = Fold(x1, k512, x2);
  x3 = Fold(x2, k512, x3);
  const __m128i k128 = _mm_set_epi64x(static_cast<long long>(kc.by128[1]), static_cast<long long>(kc.by128[0]));
  alignas(64) __m128i lane[4];
  _mm512_store_si512(lane, x3);
  __m128i r = Fold128(lane[0], k128, lane[1]);
  r = Fold128(r, k128, lane[2]);
  r = Fold128(r, k128, lane[3]);
  uint64_t c = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(r)));
  c = _mm_crc32_u64(c, static_cast<uint64_t>(_mm_extract_epi64(r, 1)));
  if (Mode == 2) _mm_sfence();
  *src = s;
  *dst = d;
  *len = n;
  return uint32_t(c);
}

}  // namespace

bool FoldAvailable() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2");
  }();
  return has;
}

uint32_t FoldCrc(uint32_t crc, const uint8_t** p, size_t* len) {
  uint8_t* none = nullptr;
  return FoldBlocks<0>(crc, &none, p, len);
}

uint32_t FoldCopyCrc(uint32_t crc, uint8_t** dst, const uint8_t** src, size_t* len, bool cold) {
  if (cold && (reinterpret_cast<uintptr_t>(*dst) & 63) == 0) return FoldBlocks<2>(crc, dst, src, len);
  return FoldBlocks<1>(crc, dst, src, len);
}

#else

bool FoldAvailable() { return false; }
uint32_t FoldCrc(uint32_t crc, const uint8_t**, size_t*) { return crc; }
uint32_t FoldCopyCrc(uint32_t crc, uint8_t**, const uint8_t**, size_t*, bool) { return crc; }

#endif

}  // namespace mooncake
