#include "client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "auth.h"
#include "crc32c.h"

namespace mooncake {

namespace {
constexpr size_t kMaxErrorMessage = 64 * 1024;
constexpr int64_t kAttachRetryMs = 10000;
constexpr size_t kRecvBuf = 256 * 1024;
// Payload remainders at least this large are received straight into their destination.
constexpr uint64_t kDirectRecv = 64 * 1024;
}  // namespace

Client::Client(ClientOptions options) : opt_(std::move(options)) {}

Client::~Client() { Stop(); }

void Client::Start() {
  started_ = true;
  copyLanes_ = std::max(1, std::min<int>(opt_.lanesPerPeer, int(std::thread::hardware_concurrency())));
  for (int i = 0; i < opt_.threads; i++) sleepers_.push_back(std::make_unique<Sleeper>());
  for (int i = 0; i < opt_.threads; i++) workers_.emplace_back([this, me = sleepers_[i].get()] { WorkerLoop(me); });
}

void Client::Stop() {
  if (stopping_.exchange(true)) return;
  std::vector<SliceTask> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Peer* p : peerList_) {
      for (SliceTask& t : p->queue) dropped.push_back(std::move(t));
      p->queue.clear();
    }
  }
  {
    std::lock_guard<std::mutex> lock(fdMu_);
    for (int fd : activeFds_) shutdown(fd, SHUT_RDWR);
  }
  WakeAll();
  for (SliceTask& t : dropped) {
    Fail(*t.batch, t.req, kTransferFail, "the transfer engine was closed");
    FinishSlice(t);
  }
  for (auto& w : workers_) w.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (Peer* p : peerList_)
    for (Endpoint& e : p->eps) {
      for (IdleConn& c : e.idle) close(c.fd);
      e.idle.clear();
    }
}

ClientStats Client::Stats() {
  ClientStats s;
  s.transferredBytes = transferred_;
  s.memcpyBytes = memcpyBytes_;
  s.retries = retries_;
  s.connectsOpened = connects_;
  s.batchesInFlight = batches_;
  return s;
}

void Client::Fail(Batch& b, uint32_t req, int32_t status, const std::string& message) {
  ReqState& st = b.st[req];
  // The first failure of a request is its answer; later slices only add noise.
  if (st.failed.exchange(true)) return;
  st.status = status;
  st.message = message;
}

Result Client::Submit(const std::vector<std::vector<std::string>>& peers, std::vector<RequestSpec>&& requests,
                      uint64_t sliceSize, int64_t timeoutMs, uint8_t transport, Done done,
                      std::vector<std::shared_ptr<void>>&& pins) {
  if (stopping_ || !started_) return Result::Fail(kTransferFail, "the transfer engine is not running");
  if (sliceSize == 0 || sliceSize > kMaxRequestLength) return Result::Fail(kInvalidParams, "bad slice size");
  std::vector<std::vector<SockAddr>> addrs(peers.size());
  for (size_t i = 0; i < peers.size(); i++) {
    if (peers[i].empty() || peers[i].size() > 64) return Result::Fail(kInvalidParams, "a peer needs 1 to 64 endpoints");
    for (const std::string& e : peers[i]) {
      SockAddr sa;
      std::string why;
      if (!ParseEndpoint(e, &sa, &why)) return Result::Fail(kInvalidParams, why);
      addrs[i].push_back(sa);
    }
  }
  for (const RequestSpec& r : requests) {
    if (r.length == 0) return Result::Fail(kInvalidParams, "zero-length request");
    if (r.peer >= peers.size()) return Result::Fail(kInvalidParams, "bad peer index");
    if (r.segment.empty() || r.segment.size() > kMaxSegmentName) return Result::Fail(kInvalidParams, "bad segment name");
    if (r.op != kOpcodeRead && r.op != kOpcodeWrite) return Result::Fail(kInvalidParams, "bad op");
  }

  auto b = std::make_shared<Batch>();
  b->reqs = std::move(requests);
  b->st.reset(new ReqState[b->reqs.size()]);
  b->deadline = MonoMs() + timeoutMs;
  b->transport = transport;
  b->done = std::move(done);
  b->pins = std::move(pins);
  int64_t slices = 0;
  uint64_t bytes = 0;
  bool anyCrc = false;
  for (const RequestSpec& r : b->reqs) {
    slices += int64_t((r.length + sliceSize - 1) / sliceSize);
    bytes += r.length;
    anyCrc = anyCrc || r.wantCrc;
  }
  b->slicesLeft = slices;
  b->sliceSize = sliceSize;
  if (anyCrc) {
    b->firstSlice.resize(b->reqs.size());
    uint32_t at = 0;
    for (size_t i = 0; i < b->reqs.size(); i++) {
      b->firstSlice[i] = at;
      at += uint32_t((b->reqs[i].length + sliceSize - 1) / sliceSize);
    }
    b->sliceCrc.assign(at, 0);
    b->sliceCrcDone.assign(at, 0);
  }
  batches_++;

  int64_t lanes = 0;
  std::vector<Sleeper*> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < peers.size(); i++) {
      std::string key;
      for (const std::string& e : peers[i]) key += e + ",";
      auto it = peers_.find(key);
      if (it == peers_.end()) {
        auto p = std::make_unique<Peer>();
        p->key = key;
        for (size_t j = 0; j < peers[i].size(); j++) {
          Endpoint e;
          e.text = peers[i][j];
          e.addr = addrs[i][j];
          p->eps.push_back(std::move(e));
        }
        peerList_.push_back(p.get());
        it = peers_.emplace(key, std::move(p)).first;
      }
      b->peers.push_back(it->second.get());
      // Lanes already busy are not counted: their threads take the new slices when they finish.
      lanes += std::max(0, LanesLocked(it->second.get(), transport) - it->second->active);
    }
    for (uint32_t i = 0; i < b->reqs.size(); i++) {
      const RequestSpec& r = b->reqs[i];
      Peer* p = b->peers[r.peer];
      for (uint64_t off = 0; off < r.length; off += sliceSize)
        p->queue.push_back(SliceTask{b, i, off, std::min<uint64_t>(sliceSize, r.length - off)});
    }
    // Wake only the workers that can take a group: small slices go up to kMinGroup to a group, a
    // group holds at most kGroupBytes (a large slice goes alone), and each peer has its free lanes.
    // Waking every idle thread costs each a futex round trip and a fight over mu_ (9 % of the
    // submitting thread's time for 256-request batches of 4 KiB).
    const int64_t groups = std::max((slices + int64_t(kMinGroup) - 1) / int64_t(kMinGroup), int64_t((bytes + kGroupBytes - 1) / kGroupBytes));
    woken = TakeIdleLocked(std::min<int64_t>(std::max<int64_t>(1, groups), lanes));
  }
  Wake(woken);
  return Result::Ok();
}

std::vector<Client::Sleeper*> Client::TakeIdleLocked(int64_t n) {
  std::vector<Sleeper*> taken;
  while (n-- > 0 && !idle_.empty()) {
    Sleeper* s = idle_.back();
    idle_.pop_back();
    s->woken = true;
    taken.push_back(s);
  }
  return taken;
}

void Client::Wake(const std::vector<Sleeper*>& taken) {
  for (Sleeper* s : taken) s->cv.notify_one();
}

void Client::WakeAll() {
  std::vector<Sleeper*> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken = TakeIdleLocked(int64_t(idle_.size()));
  }
  Wake(taken);
}

Client::Peer* Client::PickPeerLocked() {
  const size_t n = peerList_.size();
  for (size_t k = 0; k < n; k++) {
    Peer* p = peerList_[(peerRr_ + k) % n];
    if (!p->queue.empty() && p->active < LanesLocked(p, p->queue.front().batch->transport)) {
      peerRr_ = (peerRr_ + k + 1) % n;
      return p;
    }
  }
  return nullptr;
}

int Client::LanesLocked(const Peer* p, uint8_t transport) const {
  return p->copies && transport != kTransportTcp ? copyLanes_ : opt_.lanesPerPeer;
}

void Client::WorkerLoop(Sleeper* me) {
  if (opt_.batchScheduling) RunAsBatchThread();
  std::vector<SliceTask> group;
  while (true) {
    Peer* p = nullptr;
    group.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_ && (p = PickPeerLocked()) == nullptr) {
        me->woken = false;
        idle_.push_back(me);
        me->cv.wait(lock, [&] { return me->woken || stopping_; });
        if (!me->woken) idle_.erase(std::find(idle_.begin(), idle_.end(), me));
      }
      if (stopping_) return;
      // A group: consecutive slices of one batch to this peer, sent back to back on one lane
      // (pipelined). Small slices are spread over the free lanes; a large slice goes alone.
      const size_t lanes = size_t(std::max(1, LanesLocked(p, p->queue.front().batch->transport) - p->active));
      // Small batches stay on one lane: each extra lane costs thread wake-ups on both sides,
      // which only pay off once there is enough work to share.
      const size_t queued = p->queue.size();
      const size_t want = std::min(kMaxGroup, std::max(std::min(queued, kMinGroup), (queued + lanes - 1) / lanes));
      const Batch* batch = p->queue.front().batch.get();
      uint64_t bytes = 0;
      while (!p->queue.empty() && group.size() < want && p->queue.front().batch.get() == batch &&
             (group.empty() || bytes + p->queue.front().len <= kGroupBytes)) {
        bytes += p->queue.front().len;
        group.push_back(std::move(p->queue.front()));
        p->queue.pop_front();
      }
      p->active++;
    }
    const GroupPath path = RunGroup(p, group);
    bool moreLanes = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      p->active--;
      if (path != GroupPath::kNone && group[0].batch->transport != kTransportTcp) {
        moreLanes = p->copies && path == GroupPath::kTcp;
        p->copies = path == GroupPath::kCopied;
      }
    }
    // This thread takes the peer's next group itself; others are woken only when the peer's lanes
    // grew (its copies turned into TCP transfers). Submit wakes as many as new work needs.
    if (moreLanes) WakeAll();
    for (const SliceTask& t : group) FinishSlice(t);
  }
}

void Client::FinishSlice(const SliceTask& t) {
  Batch& b = *t.batch;
  const RequestSpec& rq = b.reqs[t.req];
  if (rq.wantCrc && !b.st[t.req].failed) {
    const size_t k = b.firstSlice[t.req] + t.off / b.sliceSize;
    if (!b.sliceCrcDone[k]) b.sliceCrc[k] = Crc32c(0, rq.local + t.off, t.len);
  }
  if (b.slicesLeft.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::vector<RequestResult> results(b.reqs.size());
  for (size_t i = 0; i < b.reqs.size(); i++) {
    results[i].status = b.st[i].failed ? b.st[i].status : kOk;
    results[i].message = b.st[i].message;
    results[i].viaMemcpy = b.st[i].viaMemcpy;
    if (b.reqs[i].wantCrc && !b.st[i].failed) {
      const uint64_t len = b.reqs[i].length;
      uint32_t crc = b.sliceCrc[b.firstSlice[i]];
      for (uint64_t off = b.sliceSize, k = 1; off < len; off += b.sliceSize, k++)
        crc = Crc32cCombine(crc, b.sliceCrc[b.firstSlice[i] + k], std::min(b.sliceSize, len - off));
      results[i].crc = crc;
    }
  }
  batches_--;
  b.done(std::move(results));
}

Client::GroupPath Client::RunGroup(Peer* p, std::vector<SliceTask>& group) {
  Batch& b = *group[0].batch;
  std::vector<const SliceTask*> tcp;
  tcp.reserve(group.size());
  // Same-host state, looked up once per segment of the group.
  const std::string* attachedName = nullptr;
  std::shared_ptr<Segment> seg;
  std::shared_ptr<ShmAttach> attach;
  GroupGrant lastGrant;
  bool checkedLive = false;
  std::vector<const SliceTask*> copied;  // memcpy slices, confirmed by a liveness check after the copies
  bool anyCopied = false;
  auto confirmCopies = [&] {
    // An owner that vanished during the copies may not have seen a write: report it.
    if (!copied.empty() && !seg->Live())
      for (const SliceTask* t : copied) Fail(b, t->req, kTransferFail, "the segment's owner went away during the copy");
    else
      for (const SliceTask* t : copied) {
        b.st[t->req].viaMemcpy = true;
        transferred_ += t->len;
        memcpyBytes_ += t->len;
      }
    copied.clear();
  };
  for (const SliceTask& t : group) {
    const RequestSpec& rq = b.reqs[t.req];
    if (b.st[t.req].failed) continue;
    if (stopping_) {
      Fail(b, t.req, kTransferFail, "the transfer engine was closed");
      continue;
    }
    if (MonoMs() >= b.deadline) {
      Fail(b, t.req, kDeadlineExceeded, "the request deadline passed before it was sent");
      continue;
    }
    if (b.transport == kTransportTcp) {
      tcp.push_back(&t);
      continue;
    }
    if (!attachedName || *attachedName != rq.segment) {
      confirmCopies();
      seg.reset();
      attach = AttachFor(p, rq.segment, b.deadline, &seg);
      attachedName = &rq.segment;
      lastGrant.valid = false;
      checkedLive = false;
    }
    if (seg) {
      // The owner must be live before the first copy (and is checked again after the last).
      if (!checkedLive) {
        checkedLive = true;
        if (!seg->Live()) seg.reset();
      }
    }
    if (seg) {
      int r = PrepareMemcpySlice(p, seg, attach, t, &lastGrant);
      if (r == 0) continue;  // refused (failure recorded)
      uint8_t* mine = rq.local + t.off;
      uint8_t* theirs = seg->data() + rq.offset + t.off;
      if (rq.op == kOpcodeWrite) seg->PrepareWrite(rq.offset + t.off, t.len);
      if (rq.wantCrc) {
        // Checksummed on the way (one pass over the bytes); a write's destination is not read here again.
        const size_t k = b.firstSlice[t.req] + t.off / b.sliceSize;
        b.sliceCrc[k] = rq.op == kOpcodeRead ? CopyCrc32c(mine, theirs, t.len, false) : CopyCrc32c(theirs, mine, t.len, true);
        b.sliceCrcDone[k] = 1;
      } else if (rq.op == kOpcodeRead) {
        memcpy(mine, theirs, t.len);
      } else {
        memcpy(theirs, mine, t.len);
      }
      copied.push_back(&t);
      anyCopied = true;
      continue;
    }
    if (b.transport == kTransportMemcpy) {
      std::string why;
      int32_t status = kNotSupported;
      if (attach && checkedLive) {
        why = "the owner of segment '" + rq.segment + "' closed it or exited";
        Fail(b, t.req, kTransferFail, why);
        continue;
      }
      if (attach) {
        std::lock_guard<std::mutex> lock(attach->mu);
        why = attach->failure;
        status = attach->failureStatus;
      }
      Fail(b, t.req, status, "the same-host memcpy path is not available for segment '" + rq.segment + "'" +
                                 (why.empty() ? "" : ": " + why));
      continue;
    }
    // 'auto': the owner closed the segment or went away, or it is not mappable: TCP gives the
    // authoritative answer.
    tcp.push_back(&t);
  }
  confirmCopies();
  if (!tcp.empty()) {
    RunTcpGroup(p, tcp);
    return GroupPath::kTcp;
  }
  return anyCopied ? GroupPath::kCopied : GroupPath::kNone;
}

std::shared_ptr<Client::ShmAttach> Client::AttachFor(Peer* p, const std::string& segment, int64_t deadline,
                                                     std::shared_ptr<Segment>* seg) {
  std::shared_ptr<ShmAttach> a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = p->attaches[segment];
    if (!slot) slot = std::make_shared<ShmAttach>();
    a = slot;
  }
  std::lock_guard<std::mutex> lock(a->mu);
  if (a->seg && a->seg->Live()) {
    *seg = a->seg;
    return a;
  }
  if (a->seg) {
    a->seg.reset();
    a->verifiedGrants.clear();
    a->failure = "the segment's owner closed it or exited";
    a->failureStatus = kTransferFail;
    a->retryAfter = MonoMs() + opt_.cooldownMs;
  }
  if (MonoMs() < a->retryAfter) return a;
  RequestHeader h;
  h.op = kOpcodeShmInfo;
  h.segment = segment;
  std::string payload;
  Outcome o = Control(p, h, deadline, &payload);
  if (o.kind != Kind::kOk || payload.size() < 33 || payload.size() > 32 + 4096) {
    a->failure = o.kind == Kind::kOk ? "bad shared-memory description from the peer" : o.result.message;
    // Authentication and missing-segment answers are the real reason; anything else means
    // "not mappable from here".
    if (o.kind == Kind::kPath) a->failureStatus = kTransferFail;
    else if (o.kind == Kind::kDeadline) a->failureStatus = kDeadlineExceeded;
    else if (o.kind == Kind::kServer && (o.result.status == kUnauthenticated || o.result.status == kSegmentNotFound))
      a->failureStatus = o.result.status;
    else a->failureStatus = kNotSupported;
    // An unreachable peer may be back soon; a peer on another host stays unmappable.
    a->retryAfter = MonoMs() + (o.kind == Kind::kPath || o.kind == Kind::kDeadline ? opt_.cooldownMs : kAttachRetryMs);
    return a;
  }
  const uint8_t* q = reinterpret_cast<const uint8_t*>(payload.data());
  ShmInfo info;
  info.ino = GetU64(q);
  info.dev = GetU64(q + 8);
  info.size = GetU64(q + 16);
  info.ownerPid = int32_t(GetU32(q + 24));
  info.grantRequired = GetU32(q + 28) & 1;
  info.path = payload.substr(32);
  Result err;
  a->seg = Segment::Attach(info, &err);
  if (!a->seg) {
    a->failure = err.message;
    a->failureStatus = kNotSupported;
    a->retryAfter = MonoMs() + kAttachRetryMs;
    return a;
  }
  a->failure.clear();
  *seg = a->seg;
  return a;
}

int Client::PrepareMemcpySlice(Peer* p, const std::shared_ptr<Segment>& seg, const std::shared_ptr<ShmAttach>& a,
                               const SliceTask& t, GroupGrant* last) {
  Batch& b = *t.batch;
  const RequestSpec& rq = b.reqs[t.req];
  const uint64_t remote = rq.offset + t.off;
  if (rq.offset > UINT64_MAX - t.off || !seg->Contains(remote, t.len)) {
    Fail(b, t.req, kBufferOverflow, "[" + std::to_string(remote) + ", +" + std::to_string(t.len) +
                                        ") is outside segment '" + rq.segment + "' of " + std::to_string(seg->size()) +
                                        " bytes");
    return 0;
  }
  if (seg->hasGrantKey()) {
    // Same checks as the server's, in this process: with the key from the segment file's header
    // (owners of this version) the signature is checked here; otherwise it is confirmed once
    // over the data connection, then cached.
    if (!rq.hasGrant) {
      Fail(b, t.req, kAccessDenied, "segment '" + rq.segment + "' requires a grant");
      return 0;
    }
    std::array<uint8_t, kGrantWireSize> mac;
    EncodeGrant(rq.grant, mac.data());
    bool known = last->valid && last->wire == mac;
    if (!known && seg->knowsGrantKey()) {
      if (!GrantAuthentic(seg->grantKey(), rq.segment, rq.grant)) {
        Fail(b, t.req, kAccessDenied, "the grant's signature does not match segment '" + rq.segment + "'");
        return 0;
      }
      known = true;
    }
    if (!known) {
      std::lock_guard<std::mutex> lock(a->mu);
      known = a->verifiedGrants.count(mac) > 0;
    }
    if (!known) {
      RequestHeader h;
      h.op = kOpcodeGrantCheck;
      h.flags = kFlagHasGrant;
      h.segment = rq.segment;
      h.grant = rq.grant;
      h.offset = remote;
      h.length = t.len;
      std::string payload;
      Outcome o = Control(p, h, b.deadline, &payload);
      if (o.kind != Kind::kOk) {
        Fail(b, t.req, o.result.status, o.result.message);
        return 0;
      }
      std::lock_guard<std::mutex> lock(a->mu);
      if (a->verifiedGrants.size() > 65536) a->verifiedGrants.clear();
      a->verifiedGrants.insert(mac);
    }
    last->wire = mac;
    last->valid = true;
    Result cover = GrantCovers(rq.grant, rq.op == kOpcodeRead ? kOpRead : kOpWrite, remote, t.len, WallMs());
    if (!cover.ok()) {
      Fail(b, t.req, cover.status, cover.message);
      return 0;
    }
  }
  return 1;
}

void Client::RunTcpGroup(Peer* p, std::vector<const SliceTask*>& todo) {
  Batch& b = *todo[0]->batch;
  const int maxAttempts = int(2 * p->eps.size() + 1);
  uint64_t excluded = 0;
  Result last = Result::Fail(kTransferFail, "no path to the peer");
  std::vector<Wire> wires;
  std::vector<const SliceTask*> left;
  auto failAll = [&](int32_t status, const std::string& message) {
    for (const SliceTask* t : todo) Fail(b, t->req, status, message);
  };
  for (int attempt = 0; attempt < maxAttempts; attempt++) {
    if (stopping_) return failAll(kTransferFail, "the transfer engine was closed");
    if (MonoMs() >= b.deadline) return failAll(kDeadlineExceeded, "the request deadline passed");
    if (attempt > 0) retries_ += todo.size();
    int ei = PickEndpoint(p, excluded);
    bool reused = false;
    Result err;
    int fd = AcquireConn(p, ei, b.deadline, &reused, &err);
    if (fd < 0) {
      ReleaseConn(p, ei, -1, false);
      if (err.status == kUnauthenticated || err.status == kDeadlineExceeded) return failAll(err.status, err.message);
      {
        std::lock_guard<std::mutex> lock(mu_);
        p->eps[ei].cooldownUntil = MonoMs() + opt_.cooldownMs;
      }
      excluded |= 1ull << (ei % 64);
      last = err;
      continue;
    }
    wires.clear();
    wires.resize(todo.size());
    for (size_t i = 0; i < todo.size(); i++) {
      const SliceTask& t = *todo[i];
      const RequestSpec& rq = b.reqs[t.req];
      RequestHeader& h = wires[i].h;
      h.op = rq.op;
      h.flags = rq.hasGrant ? kFlagHasGrant : 0;
      h.offset = rq.offset + t.off;
      h.length = t.len;
      h.segment = rq.segment;
      h.grant = rq.grant;
      wires[i].data = rq.local + t.off;
      wires[i].wantCrc = rq.wantCrc;
    }
    Outcome o = Pipeline(fd, wires.data(), wires.size(), b.deadline);
    left.clear();
    for (size_t i = 0; i < todo.size(); i++) {
      const Wire& w = wires[i];
      if (!w.done) {
        left.push_back(todo[i]);
      } else if (w.status != kOk) {
        Fail(b, todo[i]->req, w.status, w.message);
      } else {
        transferred_ += todo[i]->len;
        if (w.crcDone) {
          const size_t k = b.firstSlice[todo[i]->req] + todo[i]->off / b.sliceSize;
          b.sliceCrc[k] = w.crc;
          b.sliceCrcDone[k] = 1;
        }
      }
    }
    // Reusable only when every response arrived: the stream is then exactly between frames.
    ReleaseConn(p, ei, fd, left.empty() && o.kind == Kind::kOk);
    if (left.empty()) return;
    todo.swap(left);
    if (o.kind == Kind::kDeadline) return failAll(kDeadlineExceeded, o.result.message);
    last = o.result;
    // A pooled connection may simply have been closed by the server while idle: retry on a
    // fresh one before blaming the path.
    if (!reused) {
      std::lock_guard<std::mutex> lock(mu_);
      p->eps[ei].cooldownUntil = MonoMs() + opt_.cooldownMs;
      excluded |= 1ull << (ei % 64);
    }
  }
  failAll(kTransferFail, "every path to the peer failed; last error: " + last.message);
}

Client::Outcome Client::Control(Peer* p, RequestHeader& h, int64_t deadline, std::string* payload) {
  uint64_t excluded = 0;
  Outcome last{Kind::kPath, Result::Fail(kTransferFail, "no path to the peer")};
  for (size_t attempt = 0; attempt < 2 * p->eps.size() + 1; attempt++) {
    if (MonoMs() >= deadline) return {Kind::kDeadline, Result::Fail(kDeadlineExceeded, "the request deadline passed")};
    int ei = PickEndpoint(p, excluded);
    bool reused = false;
    Result err;
    int fd = AcquireConn(p, ei, deadline, &reused, &err);
    if (fd < 0) {
      ReleaseConn(p, ei, -1, false);
      if (err.status == kUnauthenticated) return {Kind::kServer, err};
      excluded |= 1ull << (ei % 64);
      last = {Kind::kPath, err};
      continue;
    }
    Wire w;
    w.h = h;
    w.payload = payload;
    Outcome o = Pipeline(fd, &w, 1, deadline);
    if (o.kind == Kind::kOk && w.status != kOk) o = {Kind::kServer, Result::Fail(w.status, w.message)};
    ReleaseConn(p, ei, fd, o.kind == Kind::kOk || o.kind == Kind::kServer);
    if (o.kind != Kind::kPath) return o;
    last = o;
    if (!reused) excluded |= 1ull << (ei % 64);
  }
  return last;
}

int Client::PickEndpoint(Peer* p, uint64_t excluded) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = MonoMs();
  const int n = int(p->eps.size());
  int best = -1;
  // Healthy and not yet failed for this slice: the least busy, ties broken round-robin so
  // consecutive slices alternate between addresses.
  for (int k = 0; k < n; k++) {
    int i = int((p->rr + k) % n);
    const Endpoint& e = p->eps[i];
    if ((excluded >> (i % 64)) & 1 || e.cooldownUntil > now) continue;
    if (best < 0 || e.active < p->eps[best].active) best = i;
  }
  // Otherwise the one that failed longest ago, preferring those not yet tried by this slice.
  for (int pass = 0; best < 0 && pass < 2; pass++)
    for (int i = 0; i < n; i++) {
      if (pass == 0 && ((excluded >> (i % 64)) & 1)) continue;
      if (best < 0 || p->eps[i].cooldownUntil < p->eps[best].cooldownUntil) best = i;
    }
  p->rr++;
  p->eps[best].active++;
  return best;
}

int Client::AcquireConn(Peer* p, int ei, int64_t deadline, bool* reused, Result* err) {
  SockAddr addr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Endpoint& e = p->eps[ei];
    const int64_t now = MonoMs();
    while (!e.idle.empty()) {
      IdleConn c = e.idle.back();
      e.idle.pop_back();
      if (now - c.since > opt_.idleTimeoutMs || IdleConnectionBroken(c.fd)) {
        close(c.fd);
        continue;
      }
      *reused = true;
      TrackFd(c.fd, true);
      return c.fd;
    }
    addr = e.addr;
  }
  *reused = false;
  const int64_t connectDeadline = std::min(deadline, MonoMs() + opt_.connectTimeoutMs);
  int fd = ConnectWithDeadline(addr, connectDeadline, err);
  if (fd < 0) return -1;
  connects_++;
  TrackFd(fd, true);
  if (Handshake(fd, deadline, err) < 0) {
    TrackFd(fd, false);
    close(fd);
    return -1;
  }
  return fd;
}

void Client::ReleaseConn(Peer* p, int ei, int fd, bool reusable) {
  if (fd >= 0) TrackFd(fd, false);
  std::lock_guard<std::mutex> lock(mu_);
  Endpoint& e = p->eps[ei];
  e.active--;
  if (fd < 0) return;
  if (reusable && !stopping_ && e.idle.size() < size_t(opt_.lanesPerPeer) * 2) {
    e.idle.push_back(IdleConn{fd, MonoMs()});
  } else {
    close(fd);
  }
}

void Client::TrackFd(int fd, bool add) {
  std::lock_guard<std::mutex> lock(fdMu_);
  if (add) {
    activeFds_.insert(fd);
    if (stopping_) shutdown(fd, SHUT_RDWR);
  } else {
    activeFds_.erase(fd);
  }
}

namespace {
Result ReadErrorMessage(int fd, uint32_t len, int64_t deadline, std::string* out) {
  if (len > kMaxErrorMessage) return Result::Fail(kTransferFail, "oversized error message from the peer");
  out->resize(len);
  return len ? RecvAll(fd, &(*out)[0], len, deadline) : Result::Ok();
}
}  // namespace

int Client::Handshake(int fd, int64_t deadline, Result* err) {
  uint8_t buf[kHelloSize];
  Result r = RecvAll(fd, buf, kResponseSize, deadline);
  if (!r.ok()) return *err = r, -1;
  std::string why;
  if (GetU32(buf) == kMagicResponse) {
    // Refused before the greeting (e.g. too many connections).
    ResponseHeader rh;
    if (!DecodeResponse(buf, &rh, &why)) return *err = Result::Fail(kTransferFail, why), -1;
    std::string msg;
    ReadErrorMessage(fd, rh.payloadLength, deadline, &msg);
    *err = Result::Fail(rh.status == kUnauthenticated ? kUnauthenticated : kTransferFail, "peer refused: " + msg);
    return -1;
  }
  r = RecvAll(fd, buf + kResponseSize, kHelloSize - kResponseSize, deadline);
  if (!r.ok()) return *err = r, -1;
  Hello hello;
  if (!DecodeHello(buf, &hello, &why)) return *err = Result::Fail(kTransferFail, why), -1;
  const bool haveToken = !opt_.token.empty();
  if (haveToken && !(hello.flags & kHelloAuthRequired))
    return *err = Result::Fail(kUnauthenticated, "the peer does not know the cluster token (it runs without one)"), -1;
  Auth a;
  a.flags = haveToken ? kAuthHasToken : 0;
  RandomBytes(a.nonce, sizeof a.nonce);
  if (haveToken) HandshakeProof(opt_.token, false, hello.nonce, a.nonce, a.proof);
  uint8_t out[kAuthSize];
  EncodeAuth(a, out);
  r = SendAll(fd, out, sizeof out, deadline);
  if (!r.ok()) return *err = r, -1;
  uint8_t rb[kResponseSize];
  r = RecvAll(fd, rb, sizeof rb, deadline);
  if (!r.ok()) return *err = r, -1;
  ResponseHeader rh;
  if (!DecodeResponse(rb, &rh, &why) || rh.op != kOpcodeAuth)
    return *err = Result::Fail(kTransferFail, why.empty() ? "unexpected handshake reply" : why), -1;
  if (rh.status != kOk) {
    std::string msg;
    ReadErrorMessage(fd, rh.payloadLength, deadline, &msg);
    return *err = Result::Fail(rh.status, msg), -1;
  }
  if (!haveToken) {
    if (rh.payloadLength != 0) return *err = Result::Fail(kTransferFail, "unexpected handshake reply"), -1;
    return 0;
  }
  uint8_t proof[kProofSize], expect[kProofSize];
  if (rh.payloadLength != kProofSize) return *err = Result::Fail(kUnauthenticated, "the peer did not prove the cluster token"), -1;
  r = RecvAll(fd, proof, sizeof proof, deadline);
  if (!r.ok()) return *err = r, -1;
  HandshakeProof(opt_.token, true, hello.nonce, a.nonce, expect);
  if (!ConstantTimeEqual(proof, expect, kProofSize))
    return *err = Result::Fail(kUnauthenticated, "the peer failed to prove the cluster token"), -1;
  return 0;
}

// Sends every request of `w` back to back (headers and WRITE bodies gathered into few sendmsg
// calls) while reading the responses as they come (matched by request id), so neither side
// waits for a round trip per request, and neither can block the other: sending and receiving
// progress together under one poll. Returns kOk when every response arrived (each Wire then
// holds its status), otherwise kPath/kDeadline with the unanswered ones left !done.
Client::Outcome Client::Pipeline(int fd, Wire* w, size_t n, int64_t deadline) {
  const uint64_t base = nextRequestId_.fetch_add(n);
  // Headers first (their bytes must not move once iovecs point at them), then the iovecs.
  static thread_local std::vector<uint8_t> heads;
  static thread_local std::vector<iovec> iov;
  static thread_local std::vector<uint32_t> headAt;
  heads.resize(n * RequestMaxSize());
  headAt.resize(n + 1);
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    w[i].h.id = base + i;
    headAt[i] = uint32_t(used);
    used += EncodeRequest(w[i].h, heads.data() + used);
  }
  headAt[n] = uint32_t(used);
  iov.clear();
  for (size_t i = 0; i < n; i++) {
    uint8_t* hp = heads.data() + headAt[i];
    size_t hl = headAt[i + 1] - headAt[i];
    // Consecutive headers (READs) share one iovec.
    if (!iov.empty() && static_cast<uint8_t*>(iov.back().iov_base) + iov.back().iov_len == hp) iov.back().iov_len += hl;
    else iov.push_back({hp, hl});
    if (w[i].h.op == kOpcodeWrite) iov.push_back({w[i].data, size_t(w[i].h.length)});
  }
  size_t iovAt = 0;
  // With large READs in flight, headers are received alone, so their payloads land straight
  // in their destination instead of being copied out of the receive buffer.
  bool bigReads = false;
  for (size_t i = 0; i < n && !bigReads; i++) bigReads = w[i].h.op == kOpcodeRead && w[i].h.length >= kDirectRecv;

  static thread_local std::unique_ptr<uint8_t[]> rbuf(new uint8_t[kRecvBuf]);
  uint8_t* rb = rbuf.get();
  size_t lo = 0, hi = 0;
  size_t pending = n;
  // Current response: its wire, and where its payload goes (nullptr: into `msg`).
  Wire* cur = nullptr;
  uint8_t* dst = nullptr;
  uint64_t left = 0;
  std::string* text = nullptr;
  size_t textAt = 0;

  auto fail = [&](Kind k, Result r) { return Outcome{k, std::move(r)}; };
  auto classify = [&](const Result& r) {
    return Outcome{r.status == kDeadlineExceeded ? Kind::kDeadline : Kind::kPath, r};
  };
  // Consumes buffered bytes; false with `err` on a protocol violation.
  Result err;
  auto parse = [&]() -> bool {
    while (true) {
      if (cur) {
        size_t k = size_t(std::min<uint64_t>(left, hi - lo));
        if (k) {
          if (dst) {
            memcpy(dst, rb + lo, k);
            if (cur->wantCrc) cur->crc = Crc32c(cur->crc, dst, k);
            dst += k;
          } else {
            memcpy(&(*text)[textAt], rb + lo, k);
            textAt += k;
          }
          lo += k;
          left -= k;
        }
        if (left > 0) return true;
        cur->done = true;
        if (cur->wantCrc && cur->status == kOk && cur->h.op == kOpcodeRead) cur->crcDone = true;
        cur = nullptr;
        pending--;
        continue;
      }
      if (pending == 0 || hi - lo < kResponseSize) return true;
      ResponseHeader rh;
      std::string why;
      if (!DecodeResponse(rb + lo, &rh, &why)) return err = Result::Fail(kTransferFail, "bad response: " + why), false;
      lo += kResponseSize;
      const uint64_t idx = rh.id - base;
      if (rh.id < base || idx >= n || w[idx].done || rh.op != w[idx].h.op)
        return err = Result::Fail(kTransferFail, "response does not match any request in flight"), false;
      Wire& x = w[idx];
      x.status = rh.status;
      if (x.h.op == kOpcodeRead) x.crc = 0;
      cur = &x;
      dst = nullptr;
      text = nullptr;
      textAt = 0;
      left = rh.payloadLength;
      if (rh.status != kOk) {
        if (rh.payloadLength > kMaxErrorMessage) return err = Result::Fail(kTransferFail, "oversized error message from the peer"), false;
        x.message.resize(rh.payloadLength);
        text = &x.message;
      } else if (x.h.op == kOpcodeRead) {
        if (rh.payloadLength != x.h.length) return err = Result::Fail(kTransferFail, "response length mismatch"), false;
        dst = x.data;
      } else if (x.h.op == kOpcodeWrite || x.h.op == kOpcodeGrantCheck) {
        if (rh.payloadLength != 0) return err = Result::Fail(kTransferFail, "unexpected response payload"), false;
      } else {
        // Control replies are small and bounded.
        if (rh.payloadLength > 64 * 1024 || !x.payload) return err = Result::Fail(kTransferFail, "oversized control reply"), false;
        x.payload->resize(rh.payloadLength);
        text = x.payload;
      }
    }
  };

  // One large WRITE alone: header then body with plain sends (measured: sending a whole slice
  // in one sendmsg was ~20% slower for 1 MiB slices); nothing to interleave, since the server
  // answers only after the last body byte.
  if (n == 1 && w[0].h.op == kOpcodeWrite && w[0].h.length >= kDirectRecv) {
    Result sr = SendAll(fd, heads.data(), headAt[1], deadline, nullptr, true);
    const size_t len = size_t(w[0].h.length);
    if (!w[0].wantCrc) {
      if (sr.ok()) sr = SendAll(fd, w[0].data, len, deadline);
    } else {
      // Checksummed piece by piece just before the piece is sent: it is read from cache twice
      // instead of from memory twice.
      constexpr size_t kCrcPiece = 256 * 1024;
      uint32_t crc = 0;
      for (size_t at = 0; sr.ok() && at < len; at += kCrcPiece) {
        const size_t k = std::min(kCrcPiece, len - at);
        crc = Crc32c(crc, w[0].data + at, k);
        sr = SendAll(fd, w[0].data + at, k, deadline, nullptr, at + k < len);
      }
      w[0].crc = crc;
      w[0].crcDone = true;
    }
    if (!sr.ok()) return classify(sr);
    iovAt = iov.size();
  }
  // Each direction is tried until it would block, then left alone until poll says it is ready.
  bool canSend = true, canRecv = true;
  while (pending > 0) {
    bool progress = false;
    if (canSend && iovAt < iov.size()) {
      msghdr m{};
      m.msg_iov = &iov[iovAt];
      m.msg_iovlen = std::min<size_t>(iov.size() - iovAt, 1024);
      ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0) {
        progress = true;
        size_t k = size_t(r);
        while (k > 0) {
          iovec& v = iov[iovAt];
          if (k >= v.iov_len) {
            k -= v.iov_len;
            iovAt++;
          } else {
            v.iov_base = static_cast<uint8_t*>(v.iov_base) + k;
            v.iov_len -= k;
            k = 0;
          }
        }
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        canSend = false;
      } else if (r < 0 && errno != EINTR) {
        return fail(Kind::kPath, Result::Fail(kTransferFail, std::string("send: ") + strerror(errno)));
      }
    }
    // Not tried while poll has not reported input since the last EAGAIN.
    ssize_t r = -1;
    errno = EAGAIN;
    if (!canRecv) {
    } else if (cur && dst && lo == hi && left >= kDirectRecv) {
      // Large payload: straight into its destination.
      r = recv(fd, dst, size_t(std::min<uint64_t>(left, 4u << 20)), MSG_DONTWAIT);
      if (r > 0) {
        if (cur->wantCrc) cur->crc = Crc32c(cur->crc, dst, size_t(r));
        dst += r;
        left -= uint64_t(r);
        if (left == 0) {
          cur->done = true;
          if (cur->wantCrc) cur->crcDone = true;
          cur = nullptr;
          pending--;
        }
      }
    } else {
      if (lo == hi) lo = hi = 0;
      else if (lo > kRecvBuf / 2) {
        memmove(rb, rb + lo, hi - lo);
        hi -= lo;
        lo = 0;
      }
      size_t room = kRecvBuf - hi;
      if (bigReads && !cur && hi - lo < kResponseSize) room = kResponseSize - (hi - lo);
      r = recv(fd, rb + hi, room, MSG_DONTWAIT);
      if (r > 0) {
        hi += size_t(r);
        if (!parse()) return fail(Kind::kPath, err);
      }
    }
    if (r > 0) progress = true;
    else if (r == 0) return fail(Kind::kPath, Result::Fail(kTransferFail, "connection closed by the peer"));
    else if (errno == EAGAIN || errno == EWOULDBLOCK) canRecv = false;
    else if (errno != EINTR) return fail(Kind::kPath, Result::Fail(kTransferFail, std::string("recv: ") + strerror(errno)));
    if (pending == 0) break;
    if (progress) continue;
    if (canRecv || (canSend && iovAt < iov.size())) continue;
    int64_t wait = deadline - MonoMs();
    if (wait <= 0) return classify(Result::Fail(kDeadlineExceeded, "the request deadline passed during network I/O"));
    pollfd pf{fd, short(POLLIN | (iovAt < iov.size() ? POLLOUT : 0)), 0};
    int pr = poll(&pf, 1, int(wait > 60000 ? 60000 : wait));
    if (pr < 0 && errno != EINTR) return fail(Kind::kPath, Result::Fail(kTransferFail, std::string("poll: ") + strerror(errno)));
    if (pr > 0 && (pf.revents & POLLNVAL)) return fail(Kind::kPath, Result::Fail(kTransferFail, "connection closed locally"));
    if (pr > 0) {
      // Errors and hang-ups show up as readiness: the next call reports them.
      if (pf.revents & (POLLIN | POLLERR | POLLHUP)) canRecv = true;
      if (pf.revents & (POLLOUT | POLLERR | POLLHUP)) canSend = true;
    }
  }
  // Every response arrived; bytes beyond them would be a protocol violation (left for the
  // idle check of the pooled connection to catch).
  if (hi > lo) return fail(Kind::kPath, Result::Fail(kTransferFail, "unexpected bytes after the last response"));
  return {Kind::kOk, Result::Ok()};
}

}  // namespace mooncake
