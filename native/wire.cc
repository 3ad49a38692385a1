#include "wire.h"

#include "crc32c.h"

namespace mooncake {

namespace {
uint32_t HeaderCrc(const uint8_t* head, size_t headLen, const uint8_t* tail, size_t tailLen) {
  return Crc32c(Crc32c(0, head, headLen), tail, tailLen);
}
}  // namespace

// Hello: magic | version | flags | u16 0 | nonce[32] | u32 0 | u32 crc(0..43)
void EncodeHello(const Hello& h, uint8_t out[kHelloSize]) {
  memset(out, 0, kHelloSize);
  PutU32(out, kMagicHello);
  out[4] = kWireVersion;
  out[5] = h.flags;
  memcpy(out + 8, h.nonce, 32);
  PutU32(out + 44, Crc32c(0, out, 44));
}

bool DecodeHello(const uint8_t in[kHelloSize], Hello* h, std::string* why) {
  if (GetU32(in) != kMagicHello) return *why = "not a mooncake transfer server (bad greeting magic)", false;
  if (in[4] != kWireVersion) return *why = "unsupported transfer protocol version " + std::to_string(in[4]), false;
  if (GetU32(in + 44) != Crc32c(0, in, 44)) return *why = "corrupt greeting (header checksum)", false;
  h->flags = in[5];
  memcpy(h->nonce, in + 8, 32);
  return true;
}

// Auth: magic | version | flags | u16 0 | nonce[32] | proof[32] | u32 0 | u32 crc(0..75)
void EncodeAuth(const Auth& a, uint8_t out[kAuthSize]) {
  memset(out, 0, kAuthSize);
  PutU32(out, kMagicAuth);
  out[4] = kWireVersion;
  out[5] = a.flags;
  memcpy(out + 8, a.nonce, 32);
  memcpy(out + 40, a.proof, 32);
  PutU32(out + 76, Crc32c(0, out, 76));
}

bool DecodeAuth(const uint8_t in[kAuthSize], Auth* a, std::string* why) {
  if (GetU32(in) != kMagicAuth) return *why = "bad handshake magic", false;
  if (in[4] != kWireVersion) return *why = "unsupported transfer protocol version " + std::to_string(in[4]), false;
  if (GetU32(in + 76) != Crc32c(0, in, 76)) return *why = "corrupt handshake (header checksum)", false;
  a->flags = in[5];
  memcpy(a->nonce, in + 8, 32);
  memcpy(a->proof, in + 40, 32);
  return true;
}

// Request fixed part:
//  0 u32 magic | 4 u8 version | 5 u8 op | 6 u16 flags | 8 u64 id | 16 u64 offset | 24 u64 length
//  32 u16 nameLen | 34 u16 0 | 36 u32 crc32c(bytes 0..35 | tail)
size_t EncodeRequest(const RequestHeader& r, uint8_t* out) {
  memset(out, 0, kRequestFixedSize);
  PutU32(out, kMagicRequest);
  out[4] = kWireVersion;
  out[5] = r.op;
  PutU16(out + 6, r.flags);
  PutU64(out + 8, r.id);
  PutU64(out + 16, r.offset);
  PutU64(out + 24, r.length);
  PutU16(out + 32, uint16_t(r.segment.size()));
  uint8_t* tail = out + kRequestFixedSize;
  memcpy(tail, r.segment.data(), r.segment.size());
  size_t tailLen = r.segment.size();
  if (r.flags & kFlagHasGrant) {
    EncodeGrant(r.grant, tail + tailLen);
    tailLen += kGrantWireSize;
  }
  PutU32(out + 36, HeaderCrc(out, 36, tail, tailLen));
  return kRequestFixedSize + tailLen;
}

size_t DecodeRequestFixed(const uint8_t in[kRequestFixedSize], RequestHeader* r, std::string* why) {
  if (GetU32(in) != kMagicRequest) return *why = "bad request magic", 0;
  if (in[4] != kWireVersion) return *why = "unsupported request version " + std::to_string(in[4]), 0;
  r->op = in[5];
  if (r->op < kOpcodeRead || r->op > kOpcodeGrantCheck) return *why = "unknown op " + std::to_string(r->op), 0;
  r->flags = GetU16(in + 6);
  if (r->flags & ~kFlagHasGrant) return *why = "unknown request flags", 0;
  if (GetU16(in + 34) != 0) return *why = "nonzero reserved field", 0;
  r->id = GetU64(in + 8);
  r->offset = GetU64(in + 16);
  r->length = GetU64(in + 24);
  size_t nameLen = GetU16(in + 32);
  if (nameLen == 0 || nameLen > kMaxSegmentName) return *why = "bad segment name length", 0;
  if (r->length > kMaxRequestLength) return *why = "request length above the protocol limit", 0;
  return nameLen + ((r->flags & kFlagHasGrant) ? kGrantWireSize : 0);
}

bool DecodeRequestTail(const uint8_t fixed[kRequestFixedSize], const uint8_t* tail, size_t tailLen,
                       RequestHeader* r, std::string* why) {
  if (GetU32(fixed + 36) != HeaderCrc(fixed, 36, tail, tailLen)) return *why = "corrupt request (header checksum)", false;
  size_t nameLen = GetU16(fixed + 32);
  r->segment.assign(reinterpret_cast<const char*>(tail), nameLen);
  if (r->flags & kFlagHasGrant) {
    if (!DecodeGrant(tail + nameLen, &r->grant)) return *why = "malformed grant", false;
  }
  return true;
}

// Response: 0 u32 magic | 4 u8 version | 5 u8 op | 6 u16 0 | 8 u64 id | 16 i32 status
//           20 u32 payloadLength | 24 u32 0 | 28 u32 crc32c(0..27)
void EncodeResponse(const ResponseHeader& r, uint8_t out[kResponseSize]) {
  memset(out, 0, kResponseSize);
  PutU32(out, kMagicResponse);
  out[4] = kWireVersion;
  out[5] = r.op;
  PutU64(out + 8, r.id);
  PutU32(out + 16, uint32_t(r.status));
  PutU32(out + 20, r.payloadLength);
  PutU32(out + 28, Crc32c(0, out, 28));
}

bool DecodeResponse(const uint8_t in[kResponseSize], ResponseHeader* r, std::string* why) {
  if (GetU32(in) != kMagicResponse) return *why = "bad response magic", false;
  if (in[4] != kWireVersion) return *why = "unsupported response version", false;
  if (GetU32(in + 28) != Crc32c(0, in, 28)) return *why = "corrupt response (header checksum)", false;
  r->op = in[5];
  r->id = GetU64(in + 8);
  r->status = int32_t(GetU32(in + 16));
  r->payloadLength = GetU32(in + 20);
  if (r->payloadLength > kMaxResponsePayload) return *why = "response payload above the protocol limit", false;
  return true;
}

}  // namespace mooncake
