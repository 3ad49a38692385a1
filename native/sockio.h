// Socket I/O with deadlines. Every socket of the engine is non-blocking and every wait is a
// poll() bounded by the caller's deadline, so no peer can hold a thread forever.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace mooncake {

struct SockAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// "host:port" with a numeric IPv4 host or "[v6]:port"; names are not resolved (no DNS on the
// data path).
bool ParseEndpoint(const std::string& text, SockAddr* out, std::string* why);
std::string FormatEndpoint(const sockaddr* sa);

void SetNonBlocking(int fd);
// Large buffers and no Nagle: slices are big, headers are small and latency-sensitive.
void TuneDataSocket(int fd);

// Result codes: kOk; kTransferFail when the peer closed or reset (message says which);
// kDeadlineExceeded when the deadline (monotonic ms) passed first.
Result SendAll(int fd, const void* data, size_t len, int64_t deadline, std::atomic<uint64_t>* progress = nullptr,
               bool more = false);
Result RecvAll(int fd, void* data, size_t len, int64_t deadline, std::atomic<uint64_t>* progress = nullptr);
// Connects a new non-blocking socket; returns the fd or -1 with `err` set.
int ConnectWithDeadline(const SockAddr& to, int64_t deadline, Result* err);
// True when the peer has closed or sent something unexpected on an idle connection.
bool IdleConnectionBroken(int fd);

}  // namespace mooncake
