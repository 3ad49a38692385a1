#include "grant.h"

#include <cstring>
#include <vector>

#include "auth.h"
#include "wire.h"

namespace mooncake {

void EncodeGrant(const Grant& g, uint8_t out[kGrantWireSize]) {
  PutU64(out, g.offset);
  PutU64(out + 8, g.length);
  PutU32(out + 16, g.opMask);
  PutU32(out + 20, 0);
  PutU64(out + 24, g.expiryUnixMs);
  memcpy(out + 32, g.mac, kGrantMacSize);
}

bool DecodeGrant(const uint8_t in[kGrantWireSize], Grant* g) {
  g->offset = GetU64(in);
  g->length = GetU64(in + 8);
  g->opMask = GetU32(in + 16);
  if (GetU32(in + 20) != 0) return false;
  g->expiryUnixMs = GetU64(in + 24);
  memcpy(g->mac, in + 32, kGrantMacSize);
  return (g->opMask & ~(kOpRead | kOpWrite)) == 0;
}

void GrantMac(const uint8_t key[kGrantKeySize], const std::string& segment, const Grant& g,
              uint8_t out[kGrantMacSize]) {
  std::vector<uint8_t> msg(8 + 2 + segment.size() + 8 + 8 + 4 + 8);
  uint8_t* p = msg.data();
  memcpy(p, "MCGRANT1", 8);
  p += 8;
  PutU16(p, uint16_t(segment.size()));
  p += 2;
  memcpy(p, segment.data(), segment.size());
  p += segment.size();
  PutU64(p, g.offset);
  p += 8;
  PutU64(p, g.length);
  p += 8;
  PutU32(p, g.opMask);
  p += 4;
  PutU64(p, g.expiryUnixMs);
  uint8_t full[32];
  // Per-thread kept states: a server thread checks every request with the few keys of its segments.
  HmacSha256Cached(key, kGrantKeySize, msg.data(), msg.size(), full);
  memcpy(out, full, kGrantMacSize);
}

bool GrantAuthentic(const uint8_t key[kGrantKeySize], const std::string& segment, const Grant& g) {
  uint8_t expect[kGrantMacSize];
  GrantMac(key, segment, g, expect);
  return ConstantTimeEqual(expect, g.mac, kGrantMacSize);
}

Result GrantCovers(const Grant& g, uint32_t op, uint64_t offset, uint64_t length, int64_t nowMs) {
  if ((g.opMask & op) != op) return Result::Fail(kAccessDenied, "the grant does not allow this operation");
  if (nowMs < 0 || uint64_t(nowMs) >= g.expiryUnixMs) return Result::Fail(kAccessDenied, "the grant has expired");
  // Written so that no sum can overflow: both ranges are checked by differences.
  if (offset < g.offset || offset - g.offset > g.length || length > g.length - (offset - g.offset))
    return Result::Fail(kAccessDenied, "the grant does not cover the requested range");
  return Result::Ok();
}

}  // namespace mooncake
