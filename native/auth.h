// HMAC-SHA256 (from the OpenSSL that Node links in and exports), the cluster-token handshake
// proofs and random bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mooncake {

constexpr size_t kNonceSize = 32;
constexpr size_t kProofSize = 32;

void HmacSha256(const void* key, size_t keyLen, const void* msg, size_t msgLen, uint8_t out[32]);

// The same MAC for a key used over and over (the master minting grants with a segment's key):
// the padded key's hash states are kept per thread, so a MAC costs two short hash runs instead of
// a full HMAC set-up. Keys longer than a SHA-256 block take the plain path.
void HmacSha256Cached(const void* key, size_t keyLen, const void* msg, size_t msgLen, uint8_t out[32]);

// Compares secrets without an early exit, so timing does not reveal a matching prefix.
bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len);

// Proof that one side knows the token. Each side signs both nonces with its own role label, so
// a proof cannot be reflected back to its sender, and fresh nonces defeat replay.
void HandshakeProof(const std::string& token, bool fromServer, const uint8_t serverNonce[kNonceSize],
                    const uint8_t clientNonce[kNonceSize], uint8_t out[kProofSize]);

}  // namespace mooncake
