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

namespace {

struct KeyedState {
  uint8_t key[64];
  size_t keyLen = 0;
  EVP_MD_CTX* inner = nullptr;
  EVP_MD_CTX* outer = nullptr;
};

struct StateCache {
  static constexpr size_t kMax = 16;
  KeyedState entries[kMax];
  size_t used = 0;
  size_t next = 0;  // round-robin eviction
  // Never freed: a destructor would run at process exit, possibly after OpenSSL's own
  // clean-up; a few contexts per thread that ever minted are not worth that risk.
  EVP_MD_CTX* work = EVP_MD_CTX_new();
};

bool Prime(EVP_MD_CTX* ctx, const uint8_t* key, size_t keyLen, uint8_t padByte) {
  uint8_t pad[64];
  memset(pad, padByte, sizeof pad);
  for (size_t i = 0; i < keyLen; i++) pad[i] ^= key[i];
  return EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1;
}

}  // namespace

void HmacSha256Cached(const void* key, size_t keyLen, const void* msg, size_t msgLen, uint8_t out[32]) {
  thread_local StateCache cache;
  const uint8_t* k = static_cast<const uint8_t*>(key);
  if (keyLen > 64 || cache.work == nullptr) return HmacSha256(key, keyLen, msg, msgLen, out);
  KeyedState* s = nullptr;
  for (size_t i = 0; i < cache.used && !s; i++)
    if (cache.entries[i].keyLen == keyLen && memcmp(cache.entries[i].key, k, keyLen) == 0) s = &cache.entries[i];
  if (!s) {
    if (cache.used < StateCache::kMax) {
      s = &cache.entries[cache.used++];
      s->inner = EVP_MD_CTX_new();
      s->outer = EVP_MD_CTX_new();
    } else {
      s = &cache.entries[cache.next];
      cache.next = (cache.next + 1) % StateCache::kMax;
    }
    s->keyLen = 0;
    if (!s->inner || !s->outer || !Prime(s->inner, k, keyLen, 0x36) || !Prime(s->outer, k, keyLen, 0x5c))
      return HmacSha256(key, keyLen, msg, msgLen, out);
    memcpy(s->key, k, keyLen);
    s->keyLen = keyLen;
  }
  uint8_t innerHash[32];
  unsigned int n = 0;
  bool ok = EVP_MD_CTX_copy_ex(cache.work, s->inner) == 1 && EVP_DigestUpdate(cache.work, msg, msgLen) == 1 &&
            EVP_DigestFinal_ex(cache.work, innerHash, &n) == 1 && EVP_MD_CTX_copy_ex(cache.work, s->outer) == 1 &&
            EVP_DigestUpdate(cache.work, innerHash, sizeof innerHash) == 1 && EVP_DigestFinal_ex(cache.work, out, &n) == 1;
  if (!ok) HmacSha256(key, keyLen, msg, msgLen, out);
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
