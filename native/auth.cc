#include "auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace mooncake {

void RandomBytes(void* out, size_t len) {
  uint8_t* p = static_cast<uint8_t*>(out);
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      abort();  // a kernel without getrandom cannot produce safe nonces
    }
    p += n;
    len -= size_t(n);
  }
}

void HmacSha256(const void* key, size_t keyLen, const void* msg, size_t msgLen, uint8_t out[32]) {
  unsigned int outLen = 32;
  HMAC(EVP_sha256(), key, int(keyLen), static_cast<const unsigned char*>(msg), msgLen, out, &outLen);
}

bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len) {
  uint8_t diff = 0;
  for (size_t i = 0; i < len; i++) diff |= uint8_t(a[i] ^ b[i]);
  return diff == 0;
}

void HandshakeProof(const std::string& token, bool fromServer, const uint8_t serverNonce[kNonceSize],
                    const uint8_t clientNonce[kNonceSize], uint8_t out[kProofSize]) {
  static const char kClient[] = "mooncake-te/1 client";
  static const char kServer[] = "mooncake-te/1 server";
  uint8_t msg[32 + 2 * kNonceSize];
  memset(msg, 0, sizeof msg);
  memcpy(msg, fromServer ? kServer : kClient, sizeof kClient - 1);
  memcpy(msg + 32, serverNonce, kNonceSize);
  memcpy(msg + 32 + kNonceSize, clientNonce, kNonceSize);
  HmacSha256(token.data(), token.size(), msg, sizeof msg, out);
}

}  // namespace mooncake
