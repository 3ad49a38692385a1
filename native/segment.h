// Segments: shared memory in named files under /dev/shm/mooncake, mapped once (pre-faulted) and
// reused for every transfer. The owner creates them; same-host peers attach to them for the
// memcpy path. The mapping lives as long as anyone (server thread, transfer, JS window) holds
// the shared_ptr, so closing a segment can never pull memory from under a copy.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common.h"
#include "grant.h"

namespace mooncake {

constexpr const char* kShmDir = "/dev/shm/mooncake";
// The first page of each file describes it; data starts after it, page-aligned.
constexpr size_t kShmHeaderSize = 4096;

struct ShmInfo {
  std::string path;
  uint64_t ino = 0;
  uint64_t dev = 0;
  uint64_t size = 0;
  int32_t ownerPid = 0;
  bool grantRequired = false;
};

class Segment {
 public:
  // Creates, sizes, reserves (no SIGBUS later on a full tmpfs) and maps a new file.
  static std::shared_ptr<Segment> Create(const std::string& name, uint64_t size, bool withGrantKey, Result* err);
  // Maps a same-host peer's segment file after checking it is the file the peer described.
  static std::shared_ptr<Segment> Attach(const ShmInfo& info, Result* err);
  ~Segment();

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  uint8_t* data() const { return base_ + kShmHeaderSize; }
  uint64_t size() const { return size_; }
  bool owned() const { return owned_; }
  bool hasGrantKey() const { return hasGrantKey_; }
  const uint8_t* grantKey() const { return grantKey_; }
  // True for an owned segment with a key, and for an attached one whose owner wrote its key in
  // the file header (then grants are checked here, without asking the owner).
  bool knowsGrantKey() const { return hasGrantKey_ && (owned_ || knowsGrantKey_); }
  ShmInfo info() const;

  // Owner: marks the header closed (attached peers see it) and unlinks the file. The memory
  // stays mapped until the last holder lets go.
  void Retire();
  // Attached copy: the owner has neither closed the segment nor died.
  bool Live() const;

  // Attached copy, before a large write into [offset, offset+length): the mapping is not
  // populated up front (see Attach), and write faults come one 4 KiB page at a time, so the
  // first large write into each 2 MiB chunk fills that chunk's page tables in one call
  // (MADV_POPULATE_WRITE), 2-3x cheaper than faulting. Small writes just fault.
  void PrepareWrite(uint64_t offset, uint64_t length);

  // [offset, offset+length) lies inside the segment; written so nothing can overflow.
  bool Contains(uint64_t offset, uint64_t length) const { return offset <= size_ && length <= size_ - offset; }

 private:
  Segment() = default;
  std::string name_;
  std::string path_;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t ino_ = 0;
  uint64_t dev_ = 0;
  int32_t ownerPid_ = 0;
  bool owned_ = false;
  bool hasGrantKey_ = false;
  uint8_t grantKey_[kGrantKeySize] = {};
  bool knowsGrantKey_ = false;
  std::atomic<bool> retired_{false};
  // Attached copy: which 2 MiB chunks of the data have had their page tables populated.
  std::unique_ptr<std::atomic<uint8_t>[]> populated_;
  size_t chunks_ = 0;
};

// Deletes segment files whose owner process is gone (SIGKILL skips every cleanup). A pid that
// was reused is recognised by its start time. Returns the number of files removed.
int SweepStaleSegments(std::string* why);

// Unlinks every segment file this process still owns; run at exit.
void UnlinkOwnedSegmentFiles();

}  // namespace mooncake
