// Access grants: a segment owner's proof, minted by whoever holds the segment's grant key (the
// master), that a peer may read and/or write one byte range until a deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace mooncake {

constexpr size_t kGrantKeySize = 32;
constexpr size_t kGrantMacSize = 16;
constexpr size_t kGrantWireSize = 48;
constexpr uint32_t kOpRead = 1;
constexpr uint32_t kOpWrite = 2;

struct Grant {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t opMask = 0;
  uint64_t expiryUnixMs = 0;
  uint8_t mac[kGrantMacSize] = {};
};

// Wire/JS form: u64 offset | u64 length | u32 opMask | u32 zero | u64 expiry | mac[16], LE.
void EncodeGrant(const Grant& g, uint8_t out[kGrantWireSize]);
bool DecodeGrant(const uint8_t in[kGrantWireSize], Grant* g);

// mac = HMAC-SHA256(key, "MCGRANT1" | u16 nameLen | name | u64 offset | u64 length | u32 opMask |
// u64 expiry)[0:16]; src/lib/transfer/grant.ts computes the same bytes.
void GrantMac(const uint8_t key[kGrantKeySize], const std::string& segment, const Grant& g,
              uint8_t out[kGrantMacSize]);

// Checks the MAC only (the grant is authentic for this segment and unchanged).
bool GrantAuthentic(const uint8_t key[kGrantKeySize], const std::string& segment, const Grant& g);

// Checks that an authentic grant covers [offset, offset+length) for `op` at `nowMs`.
Result GrantCovers(const Grant& g, uint32_t op, uint64_t offset, uint64_t length, int64_t nowMs);

}  // namespace mooncake
