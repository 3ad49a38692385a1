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

// How much of a large payload still to come a waiting thread asks to have arrived before it is
// woken (SO_RCVLOWAT). Without it, every segment loopback delivers (64 KiB) wakes the receiver
// to copy it and sleep again, and each wake-up is paid by the sending thread too (measured on
// 1 MiB puts with 8 callers: ~15 % more puts per second). The kernel still wakes the receiver
// early when its window closes, so a mark above what the window allows cannot stall a stream.
constexpr size_t kRecvLowWaterCap = 1u << 20;
// Sets the socket's receive low-water mark to min(wanted, kRecvLowWaterCap), at least 1 (1 is
// the default: readable with any byte). True when the mark is now above 1.
bool SetRecvLowWater(int fd, uint64_t wanted);

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
