// The transfer client: batches are cut into slices that worker threads move over pooled,
// persistent per-peer connections ("lanes"), spread over all of a peer's addresses, or copy
// with memcpy when the peer's segment can be mapped on this host. A worker takes a group of
// consecutive small slices at once and pipelines them on one lane (or copies them in one go).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "segment.h"
#include "sockio.h"
#include "wire.h"

namespace mooncake {

struct ClientOptions {
  int lanesPerPeer = 4;
  int threads = 8;
  std::string token;
  int connectTimeoutMs = 5000;
  int cooldownMs = 1000;
  int idleTimeoutMs = 30000;
  bool batchScheduling = true;  // see RunAsBatchThread
};

enum Transport : uint8_t { kTransportAuto = 0, kTransportTcp = 1, kTransportMemcpy = 2 };

struct RequestSpec {
  uint8_t op = 0;  // kOpcodeRead (peer -> local) or kOpcodeWrite (local -> peer)
  uint8_t* local = nullptr;
  uint64_t length = 0;
  uint32_t peer = 0;  // index into the batch's peer list
  std::string segment;
  uint64_t offset = 0;
  bool hasGrant = false;
  Grant grant;
  // Compute the CRC32C of the local bytes (after a read, of what was written for a write) on the
  // engine's threads, so the caller's thread never walks the bytes.
  bool wantCrc = false;
};

struct RequestResult {
  int32_t status = kOk;
  std::string message;
  bool viaMemcpy = false;
  uint32_t crc = 0;  // with wantCrc, on success
};

struct ClientStats {
  uint64_t transferredBytes = 0;
  uint64_t memcpyBytes = 0;
  uint64_t retries = 0;
  uint64_t connectsOpened = 0;
  uint64_t batchesInFlight = 0;
};

class Client {
 public:
  // Runs on a worker thread once every slice of the batch has finished touching memory.
  using Done = std::function<void(std::vector<RequestResult>&&)>;

  explicit Client(ClientOptions options);
  ~Client();
  void Start();
  void Stop();
  Result Submit(const std::vector<std::vector<std::string>>& peers, std::vector<RequestSpec>&& requests,
                uint64_t sliceSize, int64_t timeoutMs, uint8_t transport, Done done,
                std::vector<std::shared_ptr<void>>&& pins);
  ClientStats Stats();

 private:
  struct IdleConn {
    int fd;
    int64_t since;
  };
  struct Endpoint {
    std::string text;
    SockAddr addr;
    int64_t cooldownUntil = 0;
    int active = 0;
    std::vector<IdleConn> idle;
  };
  struct ShmAttach {
    std::mutex mu;
    std::shared_ptr<Segment> seg;
    int64_t retryAfter = 0;
    std::string failure;
    int32_t failureStatus = kNotSupported;
    // Whole wire form (not just the MAC), so a grant with altered fields is never a cache hit.
    std::set<std::array<uint8_t, kGrantWireSize>> verifiedGrants;
  };
  struct Peer;
  struct ReqState {
    std::atomic<bool> failed{false};
    int32_t status = kOk;
    std::string message;
    std::atomic<bool> viaMemcpy{false};
  };
  struct Batch {
    std::vector<RequestSpec> reqs;
    std::vector<Peer*> peers;
    std::unique_ptr<ReqState[]> st;
    std::atomic<int64_t> slicesLeft{0};
    int64_t deadline = 0;
    uint8_t transport = kTransportAuto;
    Done done;
    std::vector<std::shared_ptr<void>> pins;
    // wantCrc: each slice's CRC (firstSlice[req] + slice index), folded per request at the end.
    uint64_t sliceSize = 0;
    std::vector<uint32_t> firstSlice;
    std::vector<uint32_t> sliceCrc;
    std::vector<uint8_t> sliceCrcDone;  // set where the copy computed it (same-host path)
  };
  struct SliceTask {
    std::shared_ptr<Batch> batch;
    uint32_t req = 0;
    uint64_t off = 0;  // within the request
    uint64_t len = 0;
  };
  struct Peer {
    std::string key;
    std::vector<Endpoint> eps;
    std::deque<SliceTask> queue;
    int active = 0;
    // The last group of an 'auto' batch was copied in memory: CPU-bound work, worth at most one
    // worker per core (more only adds wake-ups and context switches).
    bool copies = false;
    uint32_t rr = 0;
    std::map<std::string, std::shared_ptr<ShmAttach>> attaches;
  };

  // Outcome of one exchange on one connection.
  enum class Kind { kOk, kServer, kPath, kDeadline };
  struct Outcome {
    Kind kind = Kind::kOk;
    Result result;
  };

  // One request on the wire of a pipelined exchange, and its answer.
  struct Wire {
    RequestHeader h;
    uint8_t* data = nullptr;         // READ destination / WRITE source
    std::string* payload = nullptr;  // control replies
    bool done = false;
    int32_t status = kOk;
    std::string message;
    // wantCrc: the CRC32C of the bytes, taken as they are sent or land (while still in cache).
    bool wantCrc = false;
    bool crcDone = false;
    uint32_t crc = 0;
  };
  // The grant last confirmed while running a group (saves the lookup in the verified set).
  struct GroupGrant {
    std::array<uint8_t, kGrantWireSize> wire{};
    bool valid = false;
  };
  // Slices of one batch to one peer taken by a worker at once: at most this many, and at most
  // this many bytes (a slice larger than that goes alone).
  static constexpr size_t kMaxGroup = 256;
  static constexpr size_t kMinGroup = 64;
  static constexpr uint64_t kGroupBytes = 1u << 20;

  // A worker's own wake-up: woken is set (under mu_) by whoever took it off the idle stack.
  struct Sleeper {
    std::condition_variable cv;
    bool woken = false;
  };
  void WorkerLoop(Sleeper* me);
  Peer* PickPeerLocked();
  // Workers that may run groups of `p` at once when its next slice is of a batch of `transport`.
  int LanesLocked(const Peer* p, uint8_t transport) const;
  enum class GroupPath { kNone, kCopied, kTcp };
  GroupPath RunGroup(Peer* p, std::vector<SliceTask>& group);
  void RunTcpGroup(Peer* p, std::vector<const SliceTask*>& todo);
  // 1: checks passed, copy; 0: refused (the failure is recorded).
  int PrepareMemcpySlice(Peer* p, const std::shared_ptr<Segment>& seg, const std::shared_ptr<ShmAttach>& a,
                         const SliceTask& t, GroupGrant* last);
  void FinishSlice(const SliceTask& t);
  static void Fail(Batch& b, uint32_t req, int32_t status, const std::string& message);

  std::shared_ptr<ShmAttach> AttachFor(Peer* p, const std::string& segment, int64_t deadline,
                                       std::shared_ptr<Segment>* seg);
  // One control exchange (no bulk data) over any path to the peer.
  Outcome Control(Peer* p, RequestHeader& h, int64_t deadline, std::string* payload);

  int PickEndpoint(Peer* p, uint64_t excluded);
  int AcquireConn(Peer* p, int ei, int64_t deadline, bool* reused, Result* err);
  void ReleaseConn(Peer* p, int ei, int fd, bool reusable);
  int Handshake(int fd, int64_t deadline, Result* err);
  Outcome Pipeline(int fd, Wire* w, size_t n, int64_t deadline);
  void TrackFd(int fd, bool add);

  ClientOptions opt_;
  int copyLanes_ = 1;  // min(lanesPerPeer, cores)
  std::mutex mu_;  // peers, queues, endpoints, attaches map
  // Idle workers, most recently idle last: new work wakes the one that slept least (its cache
  // and CPU are still warm; the oldest sleeper, which a shared condition variable wakes, is not).
  std::vector<std::unique_ptr<Sleeper>> sleepers_;
  std::vector<Sleeper*> idle_;
  // Takes up to `n` idle workers off the stack (under mu_); WakeAll/Wake notify them after unlocking.
  std::vector<Sleeper*> TakeIdleLocked(int64_t n);
  static void Wake(const std::vector<Sleeper*>& taken);
  void WakeAll();
  std::map<std::string, std::unique_ptr<Peer>> peers_;
  std::vector<Peer*> peerList_;
  size_t peerRr_ = 0;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::mutex fdMu_;
  std::set<int> activeFds_;
  std::atomic<uint64_t> nextRequestId_{1};
  std::atomic<uint64_t> transferred_{0}, memcpyBytes_{0}, retries_{0}, connects_{0}, batches_{0};
};

}  // namespace mooncake
