// Hardware CRC32C with SSE4.2 where the CPU has it, a table-driven fallback otherwise. Only the
// hardware function is compiled for SSE4.2 (target attribute), so the addon still loads on
// CPUs without it.
#include "crc32c.h"

#include <cstring>

#include "crc32c_fold.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace mooncake {

// Appends `zeros` zero bytes to a raw CRC register; used to join parallel streams.
uint32_t ShiftCrc(uint32_t crc, size_t zeros);

namespace {

struct Table {
  uint32_t t[8][256];
  Table() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
      for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

const Table& table() {
  static const Table tbl;
  return tbl;
}

// Slicing-by-8: about 1-2 GB/s, only used on CPUs without SSE4.2.
uint32_t Software(uint32_t crc, const uint8_t* p, size_t len) {
  const Table& T = table();
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    v ^= crc;
    crc = T.t[7][v & 0xff] ^ T.t[6][(v >> 8) & 0xff] ^ T.t[5][(v >> 16) & 0xff] ^ T.t[4][(v >> 24) & 0xff] ^
          T.t[3][(v >> 32) & 0xff] ^ T.t[2][(v >> 40) & 0xff] ^ T.t[1][(v >> 48) & 0xff] ^ T.t[0][v >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ T.t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
// From this many bytes the folding path (crc32c_fold.cc) takes the whole 256-byte blocks: below
// it, the 64-byte registers (and the wake-up of their upper halves) do not pay, and batches of
// small values measured slower with them.
constexpr size_t kFoldMin = 16 * 1024;

__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, const uint8_t* p, size_t len) {
  if (len >= kFoldMin && FoldAvailable()) crc = FoldCrc(crc, &p, &len);
  uint64_t c = crc;
  while (len && (reinterpret_cast<uintptr_t>(p) & 7)) {
    c = _mm_crc32_u8(uint32_t(c), *p++);
    len--;
  }
  // Three independent streams hide the instruction's 3-cycle latency.
  constexpr size_t kBlock = 8 * 1024;
  while (len >= 3 * kBlock) {
    uint64_t c1 = 0, c2 = 0;
    const uint8_t* p1 = p + kBlock;
    const uint8_t* p2 = p + 2 * kBlock;
    for (size_t i = 0; i < kBlock; i += 8) {
      uint64_t a, b, d;
      memcpy(&a, p + i, 8);
      memcpy(&b, p1 + i, 8);
      memcpy(&d, p2 + i, 8);
      c = _mm_crc32_u64(c, a);
      c1 = _mm_crc32_u64(c1, b);
      c2 = _mm_crc32_u64(c2, d);
    }
    // Combining needs shifting c by kBlock zero bytes; done by feeding zeros would cost as much
    // as the data, so fold with the precomputed operator instead.
    c = ShiftCrc(ShiftCrc(uint32_t(c), kBlock) ^ uint32_t(c1), kBlock) ^ uint32_t(c2);
    p += 3 * kBlock;
    len -= 3 * kBlock;
  }
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    len -= 8;
  }
  while (len--) c = _mm_crc32_u8(uint32_t(c), *p++);
  return uint32_t(c);
}

// Copies while computing the CRC, the same three streams as Hardware(): the bytes are checksummed
// on their way through registers instead of being read a second time. Cold: non-temporal stores
// (the destination is not read back soon, and its lines need not be fetched first).
template <bool Cold>
__attribute__((target("sse4.2"))) uint32_t HardwareCopy(uint32_t crc, uint8_t* dst, const uint8_t* src, size_t len) {
  if (len >= kFoldMin && FoldAvailable()) {
    crc = FoldCopyCrc(crc, &dst, &src, &len, Cold);
    memcpy(dst, src, len);
    return Hardware(crc, dst, len);
  }
  uint64_t c = crc;
  constexpr size_t kBlock = 8 * 1024;
  while (len >= 3 * kBlock) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < kBlock; i += 8) {
      uint64_t a, b, d;
      memcpy(&a, src + i, 8);
      memcpy(&b, src + kBlock + i, 8);
      memcpy(&d, src + 2 * kBlock + i, 8);
      if (Cold) {
        _mm_stream_si64(reinterpret_cast<long long*>(dst + i), static_cast<long long>(a));
        _mm_stream_si64(reinterpret_cast<long long*>(dst + kBlock + i), static_cast<long long>(b));
        _mm_stream_si64(reinterpret_cast<long long*>(dst + 2 * kBlock + i), static_cast<long long>(d));
      } else {
        memcpy(dst + i, &a, 8);
        memcpy(dst + kBlock + i, &b, 8);
        memcpy(dst + 2 * kBlock + i, &d, 8);
      }
      c = _mm_crc32_u64(c, a);
      c1 = _mm_crc32_u64(c1, b);
      c2 = _mm_crc32_u64(c2, d);
    }
    c = ShiftCrc(ShiftCrc(uint32_t(c), kBlock) ^ uint32_t(c1), kBlock) ^ uint32_t(c2);
    src += 3 * kBlock;
    dst += 3 * kBlock;
    len -= 3 * kBlock;
  }
  if (Cold) _mm_sfence();
  memcpy(dst, src, len);
  return Hardware(uint32_t(c), dst, len);
}

bool CpuHasSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

// GF(2) matrix helpers to append `zeros` zero bytes to a raw (non-inverted) CRC state in
// O(log n): the classic zlib crc32_combine construction, for the Castagnoli polynomial.
uint32_t Gf2Times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  while (vec) {
    if (vec & 1) sum ^= *mat;
    vec >>= 1;
    mat++;
  }
  return sum;
}

void Gf2Square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; n++) square[n] = Gf2Times(mat, mat[n]);
}

struct ShiftOp {
  uint32_t m[32];
};

// zlib's crc32_combine core: `crc` (a raw register) pushed through `zeros` zero bytes, one
// vector through O(log zeros) squarings of the one-zero-bit operator.
uint32_t ShiftVector(uint32_t crc, uint64_t zeros) {
  if (zeros == 0) return crc;
  uint32_t odd[32], even[32];
  odd[0] = 0x82F63B78u;
  uint32_t row = 1;
  for (int n = 1; n < 32; n++) {
    odd[n] = row;
    row <<= 1;
  }
  Gf2Square(even, odd);  // 2 zero bits
  Gf2Square(odd, even);  // 4 zero bits
  uint64_t len = zeros;
  while (true) {
    Gf2Square(even, odd);
    if (len & 1) crc = Gf2Times(even, crc);
    len >>= 1;
    if (!len) break;
    Gf2Square(odd, even);
    if (len & 1) crc = Gf2Times(odd, crc);
    len >>= 1;
    if (!len) break;
  }
  return crc;
}

// The operator for `zeros` bytes as a matrix (its columns: the basis vectors shifted), so that
// the hot 8 KiB shift of Hardware() is one matrix-vector product.
ShiftOp MakeShift(size_t zeros) {
  ShiftOp result;
  for (int bit = 0; bit < 32; bit++) result.m[bit] = ShiftVector(1u << bit, zeros);
  return result;
}

}  // namespace

uint32_t ShiftCrc(uint32_t crc, size_t zeros) {
  static const ShiftOp op = MakeShift(8 * 1024);
  return zeros == 8 * 1024 ? Gf2Times(op.m, crc) : ShiftVector(crc, zeros);
}

bool Crc32cHardware() {
#if defined(__x86_64__)
  static const bool has = CpuHasSse42();
  return has;
#else
  return false;
#endif
}

uint32_t Crc32cCombine(uint32_t crcA, uint32_t crcB, uint64_t lenB) {
  // crc(a) pushed through lenB zero bytes, plus crc(b): the pre/post inversions cancel out.
  return ShiftVector(crcA, lenB) ^ crcB;
}

uint32_t CopyCrc32c(uint8_t* dst, const uint8_t* src, size_t len, bool cold) {
  uint32_t crc = ~0u;
#if defined(__x86_64__)
  if (Crc32cHardware()) return ~(cold ? HardwareCopy<true>(crc, dst, src, len) : HardwareCopy<false>(crc, dst, src, len));
#endif
  memcpy(dst, src, len);
  return ~Software(crc, dst, len);
}

uint32_t Crc32c(uint32_t seed, const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t crc = ~seed;
#if defined(__x86_64__)
  if (Crc32cHardware()) return ~Hardware(crc, p, len);
#endif
  return ~Software(crc, p, len);
}

}  // namespace mooncake
