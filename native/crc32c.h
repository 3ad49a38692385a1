// CRC32C (Castagnoli), the checksum of end-to-end object integrity (S15).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mooncake {

// Continues a CRC: crc32c(b, crc32c(a, 0)) == crc32c(a + b, 0), like the iSCSI/ext4 convention
// (the pre/post inversion is inside).
uint32_t Crc32c(uint32_t seed, const void* data, size_t len);

// memcpy(dst, src, len) and the CRC32C of the bytes, in one pass. `cold`: the destination will not
// be read soon (non-temporal stores).
uint32_t CopyCrc32c(uint8_t* dst, const uint8_t* src, size_t len, bool cold);

// The CRC of a + b from crc(a) and crc(b) (zlib's crc32_combine for CRC32C).
uint32_t Crc32cCombine(uint32_t crcA, uint32_t crcB, uint64_t lenB);

// True when the SSE4.2 instruction is used (reported in benchmarks).
bool Crc32cHardware();

}  // namespace mooncake
