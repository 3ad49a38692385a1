// Shared vocabulary of the native engine: status codes (the numbers of src/lib/errors.ts, so a
// status crosses the wire and reaches JS unchanged) and clocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <sched.h>
#include <time.h>

namespace mooncake {

// Must match ErrorCode in src/lib/errors.ts.
enum Status : int32_t {
  kOk = 0,
  kInternalError = -1,
  kBufferOverflow = -10,
  kSegmentNotFound = -101,
  kInvalidParams = -600,
  kTransferFail = -800,
  kNotSupported = -1012,
  kUnauthenticated = -2000,
  kUnavailable = -2002,
  kDeadlineExceeded = -2005,
  kAccessDenied = -2300,
};

struct Result {
  int32_t status = kOk;
  std::string message;
  bool ok() const { return status == kOk; }
  static Result Ok() { return {}; }
  static Result Fail(int32_t s, std::string m) { return {s, std::move(m)}; }
};

// Deadlines and cooldowns use the monotonic clock; grant expiries are wall-clock (they are
// minted by another process, the master).
inline int64_t MonoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Puts the calling thread under SCHED_BATCH. The client's threads move bulk bytes; woken by a
// submission, a normal thread preempts whoever runs on that CPU - usually the application's
// event loop that just submitted, which then waits for the copy to finish while the other CPU
// may sit idle. Batch threads take an idle CPU or wait for their turn instead. Measured with 8
// callers of 1 MiB on 2 cores: same-host puts +10 %, TCP gets +15 %. Not for the server's
// threads: a sender and a receiver that both wait for their turn halved 16 MiB reads with 64
// callers. Unprivileged (SCHED_OTHER <-> SCHED_BATCH); a refusal leaves the thread as it was.
inline void RunAsBatchThread() {
  sched_param sp{};
  (void)sched_setscheduler(0, SCHED_BATCH, &sp);
}

inline int64_t WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Copies into memory this process will not read back soon (a segment receiving a WRITE):
// non-temporal stores for the aligned middle, so the destination's cache lines are not first
// read from DRAM (halves the memory traffic of a copy whose destination is cold).
void CopyToCold(uint8_t* dst, const uint8_t* src, size_t n);

// Random bytes from the kernel (getrandom never returns short reads for <= 256 bytes).
void RandomBytes(void* out, size_t len);

}  // namespace mooncake
