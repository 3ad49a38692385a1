// The data-connection wire format (docs/transfer-protocol.md): fixed little-endian frames with
// a magic, a version, a request id and a CRC32C over the header, so garbage and truncation are
// detected before any memory is touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "grant.h"

namespace mooncake {

inline void PutU16(uint8_t* p, uint16_t v) { memcpy(p, &v, 2); }
inline void PutU32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
inline void PutU64(uint8_t* p, uint64_t v) { memcpy(p, &v, 8); }
inline uint16_t GetU16(const uint8_t* p) { uint16_t v; memcpy(&v, p, 2); return v; }
inline uint32_t GetU32(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }
inline uint64_t GetU64(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return v; }

constexpr uint8_t kWireVersion = 1;
constexpr uint32_t kMagicHello = 0x4854434D;     // "MCTH" server greeting
constexpr uint32_t kMagicAuth = 0x4154434D;      // "MCTA" client answer
constexpr uint32_t kMagicRequest = 0x5154434D;   // "MCTQ"
constexpr uint32_t kMagicResponse = 0x5254434D;  // "MCTR"

enum Op : uint8_t {
  kOpcodeRead = 1,
  kOpcodeWrite = 2,
  kOpcodeShmInfo = 3,     // where the segment's shared-memory file is, for the same-host path
  kOpcodeGrantCheck = 4,  // is this grant authentic (the same-host path checks coverage itself)
  kOpcodeAuth = 5,        // only in responses: the handshake verdict
};

constexpr uint16_t kFlagHasGrant = 1;
constexpr uint8_t kHelloAuthRequired = 1;
constexpr uint8_t kAuthHasToken = 1;

constexpr size_t kHelloSize = 48;
constexpr size_t kAuthSize = 80;
constexpr size_t kRequestFixedSize = 40;
constexpr size_t kResponseSize = 32;
constexpr size_t kMaxSegmentName = 255;
// Requests carry at most one slice; clients slice to <= 16 MiB.
constexpr uint64_t kMaxRequestLength = 64ull << 20;
constexpr uint32_t kMaxResponsePayload = uint32_t(kMaxRequestLength);

struct Hello {
  uint8_t flags = 0;
  uint8_t nonce[32] = {};
};

struct Auth {
  uint8_t flags = 0;
  uint8_t nonce[32] = {};
  uint8_t proof[32] = {};
};

struct RequestHeader {
  uint8_t op = 0;
  uint16_t flags = 0;
  uint64_t id = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string segment;
  Grant grant;
};

struct ResponseHeader {
  uint8_t op = 0;
  uint64_t id = 0;
  int32_t status = 0;
  uint32_t payloadLength = 0;
};

void EncodeHello(const Hello& h, uint8_t out[kHelloSize]);
bool DecodeHello(const uint8_t in[kHelloSize], Hello* h, std::string* why);
void EncodeAuth(const Auth& a, uint8_t out[kAuthSize]);
bool DecodeAuth(const uint8_t in[kAuthSize], Auth* a, std::string* why);

// Request = 40 fixed bytes | segment name | grant (48 bytes, when flagged). The size of the tail
// is known from the fixed part, so the server reads the fixed part, validates it, then the tail.
size_t EncodeRequest(const RequestHeader& r, uint8_t* out);  // out >= RequestMaxSize()
constexpr size_t RequestMaxSize() { return kRequestFixedSize + kMaxSegmentName + kGrantWireSize; }
// Validates the fixed part and returns the tail size, or 0 with `why` on a malformed header.
size_t DecodeRequestFixed(const uint8_t in[kRequestFixedSize], RequestHeader* r, std::string* why);
// Completes the request with its tail and checks the header CRC over everything.
bool DecodeRequestTail(const uint8_t fixed[kRequestFixedSize], const uint8_t* tail, size_t tailLen,
                       RequestHeader* r, std::string* why);

void EncodeResponse(const ResponseHeader& r, uint8_t out[kResponseSize]);
bool DecodeResponse(const uint8_t in[kResponseSize], ResponseHeader* r, std::string* why);

}  // namespace mooncake
