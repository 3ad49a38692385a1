// CRC32C of whole 256-byte blocks by carry-less multiplication (crc32c.cc uses it for large
// inputs on CPUs that have AVX-512 VPCLMULQDQ; the tail goes through the crc32 instruction).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mooncake {

// The CPU (and OS) support the folding path.
bool FoldAvailable();

// Raw CRC register `crc` (no inversions) continued over the whole 256-byte blocks of
// [*p, *p + *len) (at least one); advances *p and *len past them.
uint32_t FoldCrc(uint32_t crc, const uint8_t** p, size_t* len);

// The same while copying those bytes to *dst (advanced too); `cold`: non-temporal stores
// where *dst is 64-byte aligned.
uint32_t FoldCopyCrc(uint32_t crc, uint8_t** dst, const uint8_t** src, size_t* len, bool cold);

}  // namespace mooncake
