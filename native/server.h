// The transfer server: a small pool of threads that all wait on one epoll set (connections are
// EPOLLONESHOT, so exactly one thread takes a ready connection, with no hand-off between
// threads). The taker serves that connection's frames, then re-arms it. Input is read in large
// chunks into a per-thread buffer, so a pipelined client's many small requests cost one recv;
// responses are gathered and leave in one send when the input runs dry (or before any wait).
// Input never makes a thread wait: a turn reads only what the socket has; a partial handshake,
// header or WRITE body stays on the Conn (large bodies go straight from the socket into segment
// memory as they arrive) and the connection goes back to epoll; SweepIdle enforces the
// handshake and frame deadlines. Large READ payloads are sent straight from segment memory.
// Output never makes a thread wait either: what the socket does not take stays on the Conn
// (owned bytes, then at most one slice of segment memory, kept mapped), the connection waits
// in epoll for EPOLLOUT with its input unread (backpressure), and SweepIdle gives up on a peer
// that stops reading for ioTimeoutMs.
// After a fatal frame the connection lingers briefly (FIN sent, input drained) before close.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "segment_table.h"
#include "wire.h"

namespace mooncake {

struct ServerOptions {
  std::vector<std::string> hosts;
  int port = 0;
  std::string token;
  int maxConnections = 1024;
  int idleTimeoutMs = 60000;
  int threads = 4;
  int ioTimeoutMs = 30000;
};

struct ListenerStats {
  std::string endpoint;
  bool open = false;
  uint64_t accepted = 0;
  uint64_t requests = 0;
  uint64_t bytesRead = 0;     // served to READ requests
  uint64_t bytesWritten = 0;  // received from WRITE requests
};

struct ServerStats {
  std::vector<ListenerStats> listeners;
  uint64_t connections = 0;
  uint64_t refusedConnections = 0;
  uint64_t malformedFrames = 0;
  uint64_t authFailures = 0;
  uint64_t deniedRequests = 0;
  uint64_t idleClosed = 0;
};

class Server {
 public:
  Server(ServerOptions options, SegmentTable* segments);
  ~Server();
  Result Start(std::vector<std::string>* endpoints);
  // Closes one address's listener and its connections, as if that NIC went down.
  bool CloseListener(const std::string& host);
  void Stop();
  ServerStats Stats();

 private:
  struct Listener {
    int fd = -1;
    std::string endpoint;
    std::string host;
    std::atomic<bool> open{false};
    std::atomic<uint64_t> accepted{0}, requests{0}, bytesRead{0}, bytesWritten{0};
  };
  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    size_t listener = 0;
    bool authed = false;
    bool busy = false;
    int64_t lastActive = 0;
    uint8_t nonce[32] = {};
    // The last grant whose MAC was verified on this connection, and for which segment: a
    // pipelined batch repeats one grant for many requests, and the MAC (HMAC-SHA256) is the
    // largest per-request cost. Range, op and expiry are still checked on every request.
    std::weak_ptr<Segment> grantSeg;
    std::string grantSegName;
    uint8_t grantWire[kGrantWireSize] = {};
    bool grantValid = false;
    // The last request carried a large body: read the next header alone, so that body bytes
    // go straight from the socket to segment memory instead of through the input buffer.
    bool bulk = false;
    // Receive state kept between turns: a worker never waits for a peer's bytes. What has
    // arrived of a handshake, a frame header or a WRITE body is kept here, the connection goes
    // back to epoll, and SweepIdle enforces the deadlines.
    int64_t acceptedAt = 0;       // the handshake must complete within handshakeMs of this
    uint8_t hs[kAuthSize] = {};   // the AUTH frame so far
    size_t hsLen = 0;
    std::vector<uint8_t> carry;   // a partial request header (< RequestMaxSize() bytes)
    int64_t frameStart = 0;       // when the frame being received began (0: between frames)
    // A WRITE whose body is still arriving (bodyLeft > 0): into segment memory, or discarded
    // (bodyDst == nullptr: a refused WRITE's body, drained to keep the stream in step).
    uint64_t bodyLeft = 0, bodyLen = 0, bodyId = 0;
    uint8_t* bodyDst = nullptr;
    std::shared_ptr<Segment> bodySeg;  // keeps the segment mapped while its body arrives
    // The receive low-water mark is raised while a large body arrives (see ContinueBody).
    bool lowatRaised = false;
    // After a fatal frame: the answer is out, our side is shut down (FIN), and the peer's
    // remaining input is read and dropped (bounded) before close, so no reset drops the answer.
    bool lingering = false;
    int64_t lingerUntil = 0;
    size_t lingerLeft = 0;
    // Answers the socket has not taken yet: pendOut[pendOutAt..], then pendLeft bytes of
    // segment memory at pendData (pendSeg keeps it mapped). sendStart: when output stalled.
    std::vector<uint8_t> pendOut;
    size_t pendOutAt = 0;
    std::shared_ptr<Segment> pendSeg;
    const uint8_t* pendData = nullptr;
    uint64_t pendLeft = 0;
    int64_t sendStart = 0;
    bool pending() const { return pendOutAt < pendOut.size() || pendLeft > 0; }
  };
  // What a turn (or a frame) leaves the connection as. kWaitWrite: answers are waiting for
  // room in the socket; wait for EPOLLOUT, read nothing meanwhile.
  enum class Next { kKeep, kClose, kLinger, kWaitWrite };
  // How far an attempt to send got without waiting.
  enum class Sent { kAll, kBlocked, kFailed };

  void WorkerLoop();
  void AcceptOn(size_t index);
  void Rearm(const std::shared_ptr<Conn>& c, bool forWrite = false);
  void CloseConn(const std::shared_ptr<Conn>& c);
  void SweepIdle();
  struct Io;  // one turn's buffered input and output (thread-local buffers)
  Next ServeTurn(Conn& c);
  // kDone: frame served; kPending: the peer's bytes ran out mid-frame (state kept on the Conn);
  // kBlocked: frame served, but its answers wait for room in the socket (kept on the Conn).
  enum class Step { kDone, kPending, kClose, kFatal, kBlocked };
  static Sent SendPending(Conn& c);
  Step ServeFrame(Conn& c, Io& io);
  Step ContinueBody(Conn& c, Io& io);
  Next Handshake(Conn& c);
  Next Linger(Conn& c);
  void StartLinger(Conn& c);
  int HandshakeMs() const { return opt_.ioTimeoutMs < kMaxHandshakeMs ? opt_.ioTimeoutMs : kMaxHandshakeMs; }
  static constexpr int kMaxHandshakeMs = 5000;
  bool Respond(Conn& c, uint8_t op, uint64_t id, int32_t status, const std::string& message, bool more = false,
               uint32_t payloadLength = 0);
  // Queues a response (and an error message) in the turn's output buffer.
  void Queue(Io& io, uint8_t op, uint64_t id, int32_t status, const std::string& message, uint32_t payloadLength = 0);
  Result Authorize(Conn& c, const RequestHeader& h, const std::shared_ptr<Segment>& seg, uint32_t opBit);

  ServerOptions opt_;
  SegmentTable* segments_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::vector<std::thread> workers_;
  std::atomic<int64_t> nextSweep_{0};

  std::mutex mu_;  // conns_, listener sockets
  std::map<uint64_t, std::shared_ptr<Conn>> conns_;
  uint64_t nextConnId_ = 1;

  std::atomic<uint64_t> refused_{0}, malformed_{0}, authFailures_{0}, denied_{0}, idleClosed_{0};
};

}  // namespace mooncake
