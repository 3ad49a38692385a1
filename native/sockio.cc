#include "sockio.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mooncake {

namespace {
// Bigger calls mean fewer syscalls; the kernel splits them anyway.
constexpr size_t kIoChunk = 4u << 20;

Result WaitFor(int fd, short events, int64_t deadline) {
  while (true) {
    int64_t left = deadline - MonoMs();
    if (left <= 0) return Result::Fail(kDeadlineExceeded, "the request deadline passed during network I/O");
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, int(left > 60000 ? 60000 : left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Result::Fail(kTransferFail, std::string("poll: ") + strerror(errno));
    }
    if (n == 0) continue;
    if (p.revents & POLLNVAL) return Result::Fail(kTransferFail, "connection closed locally");
    // POLLERR/POLLHUP: let the following send/recv report the exact error.
    return Result::Ok();
  }
}
}  // namespace

bool ParseEndpoint(const std::string& text, SockAddr* out, std::string* why) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return *why = "bad endpoint " + text, false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return *why = "endpoint without a port: " + text, false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  long p = strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p <= 0 || p > 65535) return *why = "bad port in endpoint " + text, false;
  memset(&out->addr, 0, sizeof out->addr);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(p));
    out->len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(p));
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  return *why = "endpoint host must be a numeric IP address: " + text, false;
}

std::string FormatEndpoint(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
  inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

bool SetRecvLowWater(int fd, uint64_t wanted) {
  const int mark = int(std::max<uint64_t>(1, std::min<uint64_t>(wanted, kRecvLowWaterCap)));
  return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &mark, sizeof mark) == 0 && mark > 1;
}

void TuneDataSocket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

Result SendAll(int fd, const void* data, size_t len, int64_t deadline, std::atomic<uint64_t>* progress, bool more) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    size_t chunk = len < kIoChunk ? len : kIoChunk;
    ssize_t n = send(fd, p, chunk, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n > 0) {
      p += n;
      len -= size_t(n);
      if (progress) progress->fetch_add(uint64_t(n), std::memory_order_relaxed);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Result r = WaitFor(fd, POLLOUT, deadline);
      if (!r.ok()) return r;
      continue;
    }
    return Result::Fail(kTransferFail, std::string("send: ") + (n < 0 ? strerror(errno) : "connection closed"));
  }
  return Result::Ok();
}

Result RecvAll(int fd, void* data, size_t len, int64_t deadline, std::atomic<uint64_t>* progress) {
  uint8_t* p = static_cast<uint8_t*>(data);
  while (len > 0) {
    size_t chunk = len < kIoChunk ? len : kIoChunk;
    ssize_t n = recv(fd, p, chunk, 0);
    if (n > 0) {
      p += n;
      len -= size_t(n);
      if (progress) progress->fetch_add(uint64_t(n), std::memory_order_relaxed);
      continue;
    }
    if (n == 0) return Result::Fail(kTransferFail, "connection closed by the peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      Result r = WaitFor(fd, POLLIN, deadline);
      if (!r.ok()) return r;
      continue;
    }
    return Result::Fail(kTransferFail, std::string("recv: ") + strerror(errno));
  }
  return Result::Ok();
}

int ConnectWithDeadline(const SockAddr& to, int64_t deadline, Result* err) {
  int fd = socket(to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = Result::Fail(kTransferFail, std::string("socket: ") + strerror(errno));
    return -1;
  }
  TuneDataSocket(fd);
  const std::string where = FormatEndpoint(reinterpret_cast<const sockaddr*>(&to.addr));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), to.len) < 0 && errno != EINPROGRESS) {
    *err = Result::Fail(kTransferFail, "connect " + where + ": " + strerror(errno));
    close(fd);
    return -1;
  }
  Result r = WaitFor(fd, POLLOUT, deadline);
  if (!r.ok()) {
    *err = r.status == kDeadlineExceeded ? Result::Fail(kDeadlineExceeded, "connect " + where + ": deadline passed") : r;
    close(fd);
    return -1;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) {
    *err = Result::Fail(kTransferFail, "connect " + where + ": " + strerror(soerr));
    close(fd);
    return -1;
  }
  return fd;
}

void CopyToCold(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__x86_64__)
  if (n >= 1024) {
    size_t head = (64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    size_t body = n & ~size_t(63);
    for (size_t i = 0; i < body; i += 64) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
      __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
    }
    _mm_sfence();
    dst += body;
    src += body;
    n -= body;
  }
#endif
  memcpy(dst, src, n);
}

bool IdleConnectionBroken(int fd) {
  pollfd p{fd, POLLIN, 0};
  int n = poll(&p, 1, 0);
  return n != 0;  // readable (EOF, RST or stray bytes) or error: do not reuse
}

}  // namespace mooncake
