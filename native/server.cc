#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "auth.h"
#include "sockio.h"

namespace mooncake {

namespace {
constexpr uint64_t kWakeTag = ~0ull;
constexpr uint64_t kListenerTag = 1ull << 63;
// A denied WRITE's body is drained (the connection stays usable) only up to the largest slice a
// client sends; anything bigger is hostile and the connection is dropped instead.
constexpr uint64_t kMaxDrain = 16ull << 20;
// Frames are served back to back while the client keeps them coming, up to this many, before
// the connection goes back to epoll (fairness between connections).
constexpr int kMaxFramesPerTurn = 4096;
// READ payloads up to this size are copied into the turn's output buffer (one send for many
// responses); larger ones are sent straight from segment memory.
constexpr uint64_t kInlineRead = 64 * 1024;
// The output buffer is sent once it holds this much.
constexpr size_t kOutFlush = 256 * 1024;
// After a fatal frame: how long and how much of the peer's further input is read and dropped
// before the close (see Server::StartLinger). The byte bound covers a pipelined group of
// requests and bodies already in flight (reading and dropping 4 MiB costs ~1 ms).
constexpr int64_t kLingerMs = 100;
constexpr size_t kLingerBytes = 4u << 20;
// Pending output buffers larger than this are released once sent (a stalled connection must
// not keep a big buffer for its lifetime).
constexpr size_t kKeepPendingCapacity = 64 * 1024;

// Sends what the socket takes now: the number of bytes sent (less than len when it is full),
// or -1 when the connection is broken.
ssize_t SendSome(int fd, const uint8_t* data, size_t len, bool more) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  return ssize_t(done);
}
}  // namespace

Server::Server(ServerOptions options, SegmentTable* segments) : opt_(std::move(options)), segments_(segments) {}

Server::~Server() { Stop(); }

Result Server::Start(std::vector<std::string>* endpoints) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) return Result::Fail(kInternalError, std::string("epoll: ") + strerror(errno));
  epoll_event wev{};
  wev.events = EPOLLIN;
  wev.data.u64 = kWakeTag;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &wev);

  int port = opt_.port;
  for (const std::string& host : opt_.hosts) {
    SockAddr sa;
    std::string why;
    if (!ParseEndpoint(host.find(':') != std::string::npos && host[0] != '[' ? "[" + host + "]:" + std::to_string(port ? port : 1)
                                                                               : host + ":" + std::to_string(port ? port : 1),
                       &sa, &why))
      return Result::Fail(kInvalidParams, "listen address: " + why);
    // Port 0 = let the kernel pick for the first address, then use the same port everywhere so
    // one port number describes the peer.
    if (sa.addr.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&sa.addr)->sin_port = htons(uint16_t(port));
    else reinterpret_cast<sockaddr_in6*>(&sa.addr)->sin6_port = htons(uint16_t(port));
    int fd = socket(sa.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Result::Fail(kInternalError, std::string("socket: ") + strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa.addr), sa.len) < 0 || listen(fd, 512) < 0) {
      int e = errno;
      close(fd);
      return Result::Fail(kUnavailable, "listen on " + host + ":" + std::to_string(port) + ": " + strerror(e));
    }
    sockaddr_storage bound{};
    socklen_t bl = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bl);
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->host = host;
    l->endpoint = FormatEndpoint(reinterpret_cast<sockaddr*>(&bound));
    if (bound.ss_family == AF_INET && port == 0) port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    if (bound.ss_family == AF_INET6 && port == 0) port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    l->open = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag | listeners_.size();
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    endpoints->push_back(l->endpoint);
    listeners_.push_back(std::move(l));
  }
  started_ = true;
  for (int i = 0; i < opt_.threads; i++) workers_.emplace_back([this] { WorkerLoop(); });
  return Result::Ok();
}

void Server::Stop() {
  if (stopping_.exchange(true)) return;
  if (started_) {
    // The eventfd stays readable (level-triggered), so every thread in epoll_wait wakes.
    uint64_t one = 1;
    (void)!write(wakefd_, &one, sizeof one);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Wakes threads blocked on these sockets; they see an error and give the slot back.
      for (auto& kv : conns_) shutdown(kv.second->fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
  }
  for (auto& l : listeners_)
    if (l->fd >= 0) close(l->fd), l->fd = -1;
  for (auto& kv : conns_) close(kv.second->fd);
  conns_.clear();
  if (epfd_ >= 0) close(epfd_);
  if (wakefd_ >= 0) close(wakefd_);
  epfd_ = wakefd_ = -1;
}

bool Server::CloseListener(const std::string& host) {
  bool found = false;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < listeners_.size(); i++) {
    Listener& l = *listeners_[i];
    if ((l.host != host && l.endpoint != host) || !l.open) continue;
    found = true;
    l.open = false;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
    close(l.fd);
    l.fd = -1;
    for (auto& kv : conns_)
      if (kv.second->listener == i) shutdown(kv.second->fd, SHUT_RDWR);
  }
  return found;
}

ServerStats Server::Stats() {
  ServerStats s;
  for (auto& l : listeners_) {
    ListenerStats ls;
    ls.endpoint = l->endpoint;
    ls.open = l->open;
    ls.accepted = l->accepted;
    ls.requests = l->requests;
    ls.bytesRead = l->bytesRead;
    ls.bytesWritten = l->bytesWritten;
    s.listeners.push_back(ls);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.connections = conns_.size();
  }
  s.refusedConnections = refused_;
  s.malformedFrames = malformed_;
  s.authFailures = authFailures_;
  s.deniedRequests = denied_;
  s.idleClosed = idleClosed_;
  return s;
}

void Server::AcceptOn(size_t index) {
  Listener& l = *listeners_[index];
  while (l.open) {
    int lfd;
    {
      // CloseListener may close the socket concurrently; read it under the lock.
      std::lock_guard<std::mutex> lock(mu_);
      lfd = l.fd;
    }
    if (lfd < 0) return;
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or EMFILE: the backlog keeps them until a slot frees
    }
    TuneDataSocket(fd);
    std::unique_lock<std::mutex> lock(mu_);
    if (conns_.size() >= size_t(opt_.maxConnections)) {
      lock.unlock();
      refused_++;
      ResponseHeader r;
      r.op = kOpcodeAuth;
      r.status = kUnavailable;
      static const char kMsg[] = "the transfer server has too many connections";
      r.payloadLength = sizeof kMsg - 1;
      uint8_t buf[kResponseSize + sizeof kMsg];
      EncodeResponse(r, buf);
      memcpy(buf + kResponseSize, kMsg, sizeof kMsg - 1);
      (void)!send(fd, buf, kResponseSize + sizeof kMsg - 1, MSG_NOSIGNAL);
      close(fd);
      continue;
    }
    auto c = std::make_shared<Conn>();
    c->id = nextConnId_++;
    c->fd = fd;
    c->listener = index;
    c->lastActive = c->acceptedAt = MonoMs();
    RandomBytes(c->nonce, sizeof c->nonce);
    Hello hello;
    hello.flags = opt_.token.empty() ? 0 : kHelloAuthRequired;
    memcpy(hello.nonce, c->nonce, sizeof c->nonce);
    uint8_t buf[kHelloSize];
    EncodeHello(hello, buf);
    // A fresh socket's send buffer is empty, so 48 bytes cannot block.
    if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) != ssize_t(sizeof buf)) {
      close(fd);
      continue;
    }
    conns_[c->id] = c;
    l.accepted++;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.u64 = c->id;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void Server::Rearm(const std::shared_ptr<Conn>& c, bool forWrite) {
  std::lock_guard<std::mutex> lock(mu_);
  c->busy = false;
  c->lastActive = MonoMs();
  epoll_event ev{};
  // Waiting to write: no EPOLLRDHUP, or a peer that half-closed without reading would wake us
  // forever; a full close or reset still reports EPOLLHUP/EPOLLERR.
  ev.events = forWrite ? EPOLLOUT | EPOLLONESHOT : EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = c->id;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Server::CloseConn(const std::shared_ptr<Conn>& c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns_.erase(c->id);
  }
  close(c->fd);
}

void Server::SweepIdle() {
  std::vector<int> toClose;
  const int64_t now = MonoMs();
  const int64_t handshakeMs = HandshakeMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      const Conn& c = *it->second;
      // Only connections parked in epoll: a worker serving one never waits for the peer.
      bool expired = false;
      if (!c.busy) {
        if (c.lingering) expired = now >= c.lingerUntil;
        else if (!c.authed) expired = now - c.acceptedAt > handshakeMs;  // partial or missing handshake
        else if (c.frameStart) expired = now - c.frameStart > opt_.ioTimeoutMs;  // partial frame or body
        if (!expired && c.sendStart) expired = now - c.sendStart > opt_.ioTimeoutMs;  // peer not reading
        if (!expired) expired = now - c.lastActive > opt_.idleTimeoutMs;
      }
      if (expired) {
        toClose.push_back(c.fd);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Counted before closing, so whoever sees the close also sees the count.
  idleClosed_ += toClose.size();
  for (int fd : toClose) close(fd);
}

void Server::WorkerLoop() {
  epoll_event ev;
  while (!stopping_) {
    int n = epoll_wait(epfd_, &ev, 1, 250);
    const int64_t now = MonoMs();
    int64_t due = nextSweep_.load();
    if (now >= due && nextSweep_.compare_exchange_strong(due, now + 100)) SweepIdle();
    if (n <= 0 || stopping_) continue;
    const uint64_t tag = ev.data.u64;
    if (tag == kWakeTag) continue;
    if (tag & kListenerTag) {
      AcceptOn(size_t(tag & ~kListenerTag));
      continue;
    }
    std::shared_ptr<Conn> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = conns_.find(tag);
      if (it == conns_.end()) continue;
      c = it->second;
      c->busy = true;
    }
    Next next = ServeTurn(*c);
    if (next == Next::kLinger) {
      StartLinger(*c);
      next = Next::kKeep;
    }
    if (next == Next::kWaitWrite && !stopping_) Rearm(c, true);
    else if (next == Next::kKeep && !stopping_) Rearm(c);
    else CloseConn(c);
  }
}

void Server::StartLinger(Conn& c) {
  // The answers (the error) are out; FIN follows them. Reading what the peer still sends keeps
  // the kernel from answering it with a reset that would discard those answers in flight.
  shutdown(c.fd, SHUT_WR);
  c.lingering = true;
  c.lingerUntil = MonoMs() + kLingerMs;
  c.lingerLeft = kLingerBytes;
  c.carry.clear();
  c.carry.shrink_to_fit();
  c.bodyLeft = 0;
  c.bodySeg.reset();
  // What the peer still sends is to be read at once, however little.
  if (c.lowatRaised) c.lowatRaised = SetRecvLowWater(c.fd, 1);
}

Server::Next Server::Linger(Conn& c) {
  uint8_t sink[4096];
  while (c.lingerLeft > 0 && MonoMs() < c.lingerUntil) {
    ssize_t r = recv(c.fd, sink, std::min(sizeof sink, c.lingerLeft), 0);
    if (r > 0) {
      c.lingerLeft -= std::min(size_t(r), c.lingerLeft);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Next::kKeep;
    return Next::kClose;  // the peer's FIN (or an error): nothing left to reset over
  }
  return Next::kClose;
}

bool Server::Respond(Conn& c, uint8_t op, uint64_t id, int32_t status, const std::string& message, bool more,
                     uint32_t payloadLength) {
  ResponseHeader r;
  r.op = op;
  r.id = id;
  r.status = status;
  std::string msg = message.size() > 512 ? message.substr(0, 512) : message;
  r.payloadLength = status == kOk ? payloadLength : uint32_t(msg.size());
  uint8_t buf[kResponseSize + 512];
  EncodeResponse(r, buf);
  size_t n = kResponseSize;
  if (status != kOk) {
    memcpy(buf + kResponseSize, msg.data(), msg.size());
    n += msg.size();
  }
  return SendAll(c.fd, buf, n, MonoMs() + opt_.ioTimeoutMs, nullptr, more).ok();
}

Server::Next Server::Handshake(Conn& c) {
  // Only what has arrived: a partial AUTH stays on the Conn until the rest comes or the
  // handshake deadline (SweepIdle) passes. Exactly the AUTH is read; requests after it wait in
  // the socket for the next turn.
  while (c.hsLen < kAuthSize) {
    ssize_t r = recv(c.fd, c.hs + c.hsLen, kAuthSize - c.hsLen, 0);
    if (r > 0) {
      c.hsLen += size_t(r);
      continue;
    }
    if (r == 0) return Next::kClose;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Next::kKeep : Next::kClose;
  }
  Auth a;
  std::string why;
  if (!DecodeAuth(c.hs, &a, &why)) {
    malformed_++;
    Respond(c, kOpcodeAuth, 0, kInvalidParams, "malformed handshake: " + why);
    return Next::kLinger;
  }
  uint8_t proof[kProofSize];
  if (!opt_.token.empty()) {
    HandshakeProof(opt_.token, false, c.nonce, a.nonce, proof);
    if (!(a.flags & kAuthHasToken) || !ConstantTimeEqual(proof, a.proof, kProofSize)) {
      authFailures_++;
      Respond(c, kOpcodeAuth, 0, kUnauthenticated,
              (a.flags & kAuthHasToken) ? "wrong cluster token" : "this transfer server requires the cluster token");
      return Next::kLinger;
    }
    HandshakeProof(opt_.token, true, c.nonce, a.nonce, proof);
  }
  c.authed = true;
  // A fresh connection's send buffer holds at most the 48-byte HELLO: these cannot block.
  if (opt_.token.empty()) return Respond(c, kOpcodeAuth, 0, kOk, "") ? Next::kKeep : Next::kClose;
  if (!Respond(c, kOpcodeAuth, 0, kOk, "", true, kProofSize)) return Next::kClose;
  return SendAll(c.fd, proof, kProofSize, MonoMs() + opt_.ioTimeoutMs).ok() ? Next::kKeep : Next::kClose;
}


// One turn's buffered I/O. Input never waits: when a frame is incomplete and the socket has
// nothing more, the partial header is moved to Conn::carry (or the body's progress stays in
// Conn::body*), the answers are sent and the turn ends. So per-thread buffers are enough.
struct Server::Io {
  int fd;
  Conn* c;
  uint8_t* in;
  size_t lo = 0, hi = 0;
  std::vector<uint8_t>& out;
  bool exact = false;    // read no more than needed (bulk transfers: see Conn::bulk)
  // The listener's counters, summed here and published before answers leave (one atomic add
  // per flush instead of per request: these cache lines are shared by every server thread).
  Listener* l = nullptr;
  uint64_t requests = 0, bytesRead = 0, bytesWritten = 0;

  enum Got { kHave, kWouldBlock, kGone };

  size_t avail() const { return hi - lo; }
  void Publish() {
    if (requests) l->requests.fetch_add(requests, std::memory_order_relaxed);
    if (bytesRead) l->bytesRead.fetch_add(bytesRead, std::memory_order_relaxed);
    if (bytesWritten) l->bytesWritten.fetch_add(bytesWritten, std::memory_order_relaxed);
    requests = bytesRead = bytesWritten = 0;
  }
  // Sends the gathered answers without waiting; what the socket does not take moves to the
  // Conn (kBlocked) and leaves when epoll says there is room.
  Sent Flush(bool more = false) {
    Publish();
    if (out.empty()) return Sent::kAll;
    const ssize_t n = SendSome(fd, out.data(), out.size(), more);
    if (n >= 0 && size_t(n) < out.size()) {
      c->pendOut.assign(out.begin() + n, out.end());
      c->pendOutAt = 0;
      c->sendStart = MonoMs();
    }
    const bool all = n >= 0 && size_t(n) == out.size();
    out.clear();
    return n < 0 ? Sent::kFailed : all ? Sent::kAll : Sent::kBlocked;
  }
  // At a frame's end: answers leave once the buffer is large.
  Step FlushIfFull() {
    if (out.size() < kOutFlush) return Step::kDone;
    switch (Flush()) {
      case Sent::kAll: return Step::kDone;
      case Sent::kBlocked: return Step::kBlocked;
      case Sent::kFailed: return Step::kClose;
    }
    return Step::kClose;
  }
  // Makes `n` (<= kInCap) contiguous bytes available at in + lo from what the socket already
  // has; kWouldBlock when it has not got them yet (nothing is consumed: the caller keeps the
  // partial bytes and comes back when epoll says more arrived).
  Got Need(size_t n) {
    if (avail() >= n) return kHave;
    if (lo > 0) {
      memmove(in, in + lo, avail());
      hi -= lo;
      lo = 0;
    }
    while (hi < n) {
      ssize_t r = recv(fd, in + hi, exact ? n - hi : kInCap - hi, 0);
      if (r > 0) {
        hi += size_t(r);
        continue;
      }
      if (r == 0) return kGone;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kGone;
    }
    return kHave;
  }
  static constexpr size_t kInCap = 256 * 1024;
  static constexpr size_t kDirect = 64 * 1024;
  static constexpr size_t kRecvChunk = 4u << 20;
};

Server::Sent Server::SendPending(Conn& c) {
  if (c.pendOutAt < c.pendOut.size()) {
    const ssize_t n = SendSome(c.fd, c.pendOut.data() + c.pendOutAt, c.pendOut.size() - c.pendOutAt, c.pendLeft > 0);
    if (n < 0) return Sent::kFailed;
    c.pendOutAt += size_t(n);
    if (c.pendOutAt < c.pendOut.size()) return Sent::kBlocked;
    c.pendOut.clear();
    if (c.pendOut.capacity() > kKeepPendingCapacity) c.pendOut.shrink_to_fit();
    c.pendOutAt = 0;
  }
  if (c.pendLeft > 0) {
    const ssize_t n = SendSome(c.fd, c.pendData, size_t(c.pendLeft), false);
    if (n < 0) return Sent::kFailed;
    c.pendData += n;
    c.pendLeft -= uint64_t(n);
    if (c.pendLeft > 0) return Sent::kBlocked;
  }
  c.pendSeg.reset();
  c.pendData = nullptr;
  c.sendStart = 0;
  return Sent::kAll;
}

Server::Next Server::ServeTurn(Conn& c) {
  if (c.lingering) return Linger(c);
  if (!c.authed) return Handshake(c);
  if (c.pending()) {
    // Answers from an earlier turn go first; until they are out, no new request is read.
    switch (SendPending(c)) {
      case Sent::kAll: break;
      case Sent::kBlocked: return Next::kWaitWrite;
      case Sent::kFailed: return Next::kClose;
    }
  }
  static thread_local std::unique_ptr<uint8_t[]> inBuf(new uint8_t[Io::kInCap]);
  static thread_local std::vector<uint8_t> outBuf;
  outBuf.clear();
  Io io{c.fd, &c, inBuf.get(), 0, 0, outBuf};
  io.l = listeners_[c.listener].get();
  if (!c.carry.empty()) {
    // The start of a header that arrived in an earlier turn.
    memcpy(io.in, c.carry.data(), c.carry.size());
    io.hi = c.carry.size();
    c.carry.clear();
  }
  int frames = 0;
  Step step = Step::kDone;
  if (c.bodyLeft > 0) {
    step = ContinueBody(c, io);
    if (step == Step::kDone) c.frameStart = 0, frames++;
  }
  while (step == Step::kDone && !stopping_) {
    if (io.avail() == 0) {
      // Between frames: answer what was served, then see whether more requests are waiting.
      switch (io.Flush()) {
        case Sent::kAll: break;
        case Sent::kBlocked: return Next::kWaitWrite;
        case Sent::kFailed: return Next::kClose;
      }
      if (frames >= kMaxFramesPerTurn) return Next::kKeep;
      io.lo = io.hi = 0;
      io.exact = c.bulk;
      ssize_t n = recv(c.fd, io.in, c.bulk ? kRequestFixedSize : Io::kInCap, 0);
      if (n == 0) return Next::kClose;  // a clean close between frames is the normal end
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Next::kKeep : Next::kClose;
      }
      io.hi = size_t(n);
    }
    // The frame's deadline (ioTimeoutMs) runs from its first byte, across turns.
    if (!c.frameStart) c.frameStart = MonoMs();
    step = ServeFrame(c, io);
    if (step == Step::kDone) c.frameStart = 0, frames++;
  }
  switch (step) {
    case Step::kDone:  // stopping
      io.Flush();
      return Next::kClose;
    case Step::kPending:
      // The peer's bytes ran out inside a frame: keep what came (a header's start; a body's
      // progress is already on the Conn), answer what was served, and give the thread back.
      if (c.bodyLeft == 0 && io.avail() > 0) c.carry.assign(io.in + io.lo, io.in + io.hi);
      switch (io.Flush()) {
        case Sent::kAll: return Next::kKeep;
        case Sent::kBlocked: return Next::kWaitWrite;
        case Sent::kFailed: return Next::kClose;
      }
      return Next::kClose;
    case Step::kBlocked:
      // The frame is served; its answers wait on the Conn. Requests already read stay here.
      c.frameStart = 0;
      if (io.avail() > 0) c.carry.assign(io.in + io.lo, io.in + io.hi);
      return Next::kWaitWrite;
    case Step::kFatal:
      // An error a peer cannot take at once is not worth waiting for.
      return io.Flush() == Sent::kAll ? Next::kLinger : Next::kClose;
    case Step::kClose:
      io.Flush();
      return Next::kClose;
  }
  return Next::kClose;
}

// Moves the rest of the current WRITE body from the stream to its destination (or drops it):
// first what is buffered, then large remainders straight from the socket into segment memory,
// small ones through the buffer (which then also picks up the frames that follow). Only what
// the socket already has; kPending when it runs dry (progress stays on the Conn).
Server::Step Server::ContinueBody(Conn& c, Io& io) {
  while (c.bodyLeft > 0) {
    if (io.avail() > 0) {
      size_t n = size_t(std::min<uint64_t>(c.bodyLeft, io.avail()));
      if (c.bodyDst) {
        CopyToCold(c.bodyDst, io.in + io.lo, n);
        c.bodyDst += n;
      }
      io.lo += n;
      c.bodyLeft -= n;
      continue;
    }
    io.lo = io.hi = 0;
    ssize_t r;
    if (c.bodyDst && c.bodyLeft >= Io::kDirect) {
      r = recv(c.fd, c.bodyDst, size_t(std::min<uint64_t>(c.bodyLeft, Io::kRecvChunk)), 0);
      if (r > 0) {
        c.bodyDst += r;
        c.bodyLeft -= uint64_t(r);
        continue;
      }
    } else {
      r = recv(c.fd, io.in, c.bulk ? size_t(std::min<uint64_t>(c.bodyLeft, Io::kInCap)) : Io::kInCap, 0);
      if (r > 0) {
        io.hi = size_t(r);
        continue;
      }
    }
    if (r == 0) return Step::kClose;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Step::kClose;
    // Woken once the rest of a large body is here (see kRecvLowWaterCap); lowered with what is
    // left, or the last bytes of a body would never reach the mark.
    if (c.bodyDst && (c.bodyLeft >= Io::kDirect || c.lowatRaised)) c.lowatRaised = SetRecvLowWater(c.fd, c.bodyLeft);
    return Step::kPending;
  }
  if (c.lowatRaised) c.lowatRaised = SetRecvLowWater(c.fd, 1);
  if (c.bodyDst) {
    // Every byte is in segment memory: only now is the WRITE acknowledged.
    io.bytesWritten += c.bodyLen;
    Queue(io, kOpcodeWrite, c.bodyId, kOk, "");
    c.bodySeg.reset();
    c.bodyDst = nullptr;
    return io.FlushIfFull();
  }
  return Step::kDone;
}

void Server::Queue(Io& io, uint8_t op, uint64_t id, int32_t status, const std::string& message, uint32_t payloadLength) {
  ResponseHeader r;
  r.op = op;
  r.id = id;
  r.status = status;
  const size_t msgLen = status == kOk ? 0 : std::min<size_t>(message.size(), 512);
  r.payloadLength = status == kOk ? payloadLength : uint32_t(msgLen);
  uint8_t head[kResponseSize];
  EncodeResponse(r, head);
  io.out.insert(io.out.end(), head, head + kResponseSize);
  if (msgLen) io.out.insert(io.out.end(), message.data(), message.data() + msgLen);
}

Result Server::Authorize(Conn& c, const RequestHeader& h, const std::shared_ptr<Segment>& seg, uint32_t opBit) {
  if (!seg->hasGrantKey()) return Result::Ok();
  if (!(h.flags & kFlagHasGrant)) return Result::Fail(kAccessDenied, "segment '" + h.segment + "' requires a grant");
  uint8_t wire[kGrantWireSize];
  EncodeGrant(h.grant, wire);
  const bool sameSeg = c.grantValid && !c.grantSeg.owner_before(seg) && !seg.owner_before(c.grantSeg) &&
                       c.grantSegName == h.segment;
  if (!(sameSeg && memcmp(wire, c.grantWire, kGrantWireSize) == 0)) {
    if (!GrantAuthentic(seg->grantKey(), h.segment, h.grant))
      return Result::Fail(kAccessDenied, "the grant's signature does not match segment '" + h.segment + "'");
    c.grantSeg = seg;
    c.grantSegName = h.segment;
    memcpy(c.grantWire, wire, kGrantWireSize);
    c.grantValid = true;
  }
  if (opBit == 0) return Result::Ok();
  return GrantCovers(h.grant, opBit, h.offset, h.length, WallMs());
}

Server::Step Server::ServeFrame(Conn& c, Io& io) {
  io.exact = c.bulk;
  switch (io.Need(kRequestFixedSize)) {
    case Io::kHave: break;
    case Io::kWouldBlock: return Step::kPending;
    case Io::kGone: return Step::kClose;
  }
  const uint8_t* fixed = io.in + io.lo;
  RequestHeader h;
  std::string why;
  size_t tailLen = DecodeRequestFixed(fixed, &h, &why);
  if (tailLen == 0) {
    malformed_++;
    Queue(io, h.op, GetU64(fixed + 8), kInvalidParams, "malformed request: " + why);
    return Step::kFatal;
  }
  switch (io.Need(kRequestFixedSize + tailLen)) {
    case Io::kHave: break;
    case Io::kWouldBlock: return Step::kPending;
    case Io::kGone: return Step::kClose;
  }
  fixed = io.in + io.lo;
  if (!DecodeRequestTail(fixed, fixed + kRequestFixedSize, tailLen, &h, &why)) {
    malformed_++;
    Queue(io, h.op, h.id, kInvalidParams, "malformed request: " + why);
    return Step::kFatal;
  }
  io.lo += kRequestFixedSize + tailLen;
  io.requests++;
  c.bulk = h.op == kOpcodeWrite && h.length >= Io::kDirect;

  std::shared_ptr<Segment> seg = segments_->Find(h.segment);
  const bool isData = h.op == kOpcodeRead || h.op == kOpcodeWrite;
  Result verdict;
  if (!seg) {
    verdict = Result::Fail(kSegmentNotFound, "no segment named '" + h.segment + "' on this server");
  } else if (isData && h.length == 0) {
    verdict = Result::Fail(kInvalidParams, "zero-length request");
  } else if (isData && !seg->Contains(h.offset, h.length)) {
    verdict = Result::Fail(kBufferOverflow, "[" + std::to_string(h.offset) + ", +" + std::to_string(h.length) +
                                                ") is outside segment '" + h.segment + "' of " +
                                                std::to_string(seg->size()) + " bytes");
  } else if (h.op == kOpcodeRead) {
    verdict = Authorize(c, h, seg, kOpRead);
  } else if (h.op == kOpcodeWrite) {
    verdict = Authorize(c, h, seg, kOpWrite);
  } else if (h.op == kOpcodeGrantCheck) {
    verdict = Authorize(c, h, seg, 0);
  }
  if (!verdict.ok()) {
    if (verdict.status == kAccessDenied) denied_++;
    Queue(io, h.op, h.id, verdict.status, verdict.message);
    if (h.op != kOpcodeWrite) return Step::kDone;
    if (h.length > kMaxDrain) return Step::kFatal;
    // Keep the connection in step: swallow the body the client is already sending.
    c.bodyDst = nullptr;
    c.bodyLeft = h.length;
    return ContinueBody(c, io);
  }

  switch (h.op) {
    case kOpcodeRead: {
      if (h.length <= kInlineRead) {
        // Small: gathered with the other responses of this turn.
        Queue(io, h.op, h.id, kOk, "", uint32_t(h.length));
        const size_t at = io.out.size();
        io.out.resize(at + size_t(h.length));
        memcpy(io.out.data() + at, seg->data() + h.offset, size_t(h.length));
        io.bytesRead += h.length;
        return io.FlushIfFull();
      }
      Queue(io, h.op, h.id, kOk, "", uint32_t(h.length));
      io.bytesRead += h.length;
      const uint8_t* payload = seg->data() + h.offset;
      uint64_t left = h.length;
      switch (io.Flush(true)) {
        case Sent::kAll: {
          const ssize_t n = SendSome(c.fd, payload, size_t(left), false);
          if (n < 0) return Step::kClose;
          payload += n;
          left -= uint64_t(n);
          if (left == 0) return Step::kDone;
          c.sendStart = MonoMs();
          break;
        }
        case Sent::kBlocked: break;  // the header waits on the Conn; the payload follows it
        case Sent::kFailed: return Step::kClose;
      }
      c.pendSeg = seg;
      c.pendData = payload;
      c.pendLeft = left;
      return Step::kBlocked;
    }
    case kOpcodeWrite: {
      // The body lands directly in segment memory (as it arrives, over as many turns as it
      // takes); the OK is queued only once all of it has.
      c.bodySeg = seg;
      c.bodyDst = seg->data() + h.offset;
      c.bodyLeft = c.bodyLen = h.length;
      c.bodyId = h.id;
      return ContinueBody(c, io);
    }
    case kOpcodeShmInfo: {
      ShmInfo info = seg->info();
      std::string payload(32 + info.path.size(), '\0');
      uint8_t* p = reinterpret_cast<uint8_t*>(&payload[0]);
      PutU64(p, info.ino);
      PutU64(p + 8, info.dev);
      PutU64(p + 16, info.size);
      PutU32(p + 24, uint32_t(info.ownerPid));
      PutU32(p + 28, info.grantRequired ? 1 : 0);
      memcpy(p + 32, info.path.data(), info.path.size());
      Queue(io, h.op, h.id, kOk, "", uint32_t(payload.size()));
      io.out.insert(io.out.end(), payload.begin(), payload.end());
      return Step::kDone;
    }
    case kOpcodeGrantCheck:
      Queue(io, h.op, h.id, kOk, "");
      return Step::kDone;
  }
  return Step::kFatal;
}

}  // namespace mooncake
