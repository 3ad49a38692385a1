#include "segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>

#include "auth.h"

namespace mooncake {

namespace {

constexpr uint64_t kHeaderMagic = 0x31564745534D434Dull;  // "MCMSEGV1"
constexpr uint32_t kStateLive = 1;
constexpr uint32_t kStateClosed = 2;
// PrepareWrite: page tables are populated per 2 MiB chunk, for writes of at least 256 KiB.
constexpr uint64_t kPopulateChunk = 2ull << 20;
constexpr uint64_t kPopulateMin = 256 * 1024;
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // Linux 5.14
#endif

// Layout of the first page. Only the owner writes it; `state` is read by attached peers.
struct FileHeader {
  uint64_t magic;
  uint32_t version;
  std::atomic<uint32_t> state;
  int32_t ownerPid;
  uint32_t reserved;
  uint64_t ownerStartTime;
  uint64_t dataSize;
  char name[256];
  // Version 2: the segment's grant key (when it has one). Whoever can open this file (the owner's
  // user: 0600, and Attach checks the uid) can already write every byte of the segment, so
  // handing it the key gives nothing new, and lets it check grants itself instead of asking the
  // owner over a connection for every new grant.
  uint8_t grantKey[kGrantKeySize];
};
static_assert(sizeof(FileHeader) <= kShmHeaderSize, "header fits the first page");

std::mutex gOwnedMu;
std::set<std::string>* gOwned = new std::set<std::string>();  // leaked on purpose: used by atexit

void AtExitUnlink() { UnlinkOwnedSegmentFiles(); }

// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot, stable for a process.
uint64_t ProcessStartTime(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return 0;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');  // the command name may contain spaces and parentheses
  if (!p) return 0;
  p++;
  // After ")" come fields 3.. ; starttime is field 22, i.e. the 20th token here.
  for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, nullptr, 10) : 0;
}

bool ProcessAlive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

Result EnsureDir() {
  if (mkdir("/dev/shm", 01777) < 0 && errno != EEXIST)
    return Result::Fail(kInternalError, std::string("mkdir /dev/shm: ") + strerror(errno));
  if (mkdir(kShmDir, 0700) < 0 && errno != EEXIST)
    return Result::Fail(kInternalError, std::string("mkdir ") + kShmDir + ": " + strerror(errno));
  struct stat st;
  if (stat(kShmDir, &st) < 0 || !S_ISDIR(st.st_mode))
    return Result::Fail(kInternalError, std::string(kShmDir) + " is not a directory");
  return Result::Ok();
}

}  // namespace

std::shared_ptr<Segment> Segment::Create(const std::string& name, uint64_t size, bool withGrantKey, Result* err) {
  static std::once_flag once;
  std::call_once(once, [] { atexit(AtExitUnlink); });
  Result r = EnsureDir();
  if (!r.ok()) return *err = r, nullptr;
  uint8_t rnd[8];
  RandomBytes(rnd, sizeof rnd);
  char path[128];
  snprintf(path, sizeof path, "%s/seg-%d-%02x%02x%02x%02x%02x%02x%02x%02x", kShmDir, int(getpid()), rnd[0], rnd[1],
           rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return *err = Result::Fail(kInternalError, std::string("create ") + path + ": " + strerror(errno)), nullptr;
  {
    std::lock_guard<std::mutex> lock(gOwnedMu);
    gOwned->insert(path);
  }
  auto fail = [&](const std::string& what, int e) {
    close(fd);
    unlink(path);
    std::lock_guard<std::mutex> lock(gOwnedMu);
    gOwned->erase(path);
    *err = Result::Fail(e == ENOSPC || e == ENOMEM ? kBufferOverflow : kInternalError,
                        what + " " + path + ": " + strerror(e));
    return nullptr;
  };
  const uint64_t total = kShmHeaderSize + size;
  if (ftruncate(fd, off_t(total)) < 0) return fail("ftruncate", errno);
  int fe = posix_fallocate(fd, 0, off_t(total));
  if (fe != 0) return fail("reserve (is /dev/shm big enough?)", fe);
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) return fail("mmap", errno);
  struct stat st;
  fstat(fd, &st);
  close(fd);

  std::shared_ptr<Segment> seg(new Segment());
  seg->name_ = name;
  seg->path_ = path;
  seg->base_ = static_cast<uint8_t*>(base);
  seg->size_ = size;
  seg->ino_ = st.st_ino;
  seg->dev_ = st.st_dev;
  seg->ownerPid_ = getpid();
  seg->owned_ = true;
  seg->hasGrantKey_ = withGrantKey;
  if (withGrantKey) RandomBytes(seg->grantKey_, kGrantKeySize);

  auto* h = reinterpret_cast<FileHeader*>(base);
  h->magic = kHeaderMagic;
  h->version = 2;
  if (withGrantKey) memcpy(h->grantKey, seg->grantKey_, kGrantKeySize);
  h->ownerPid = getpid();
  h->ownerStartTime = ProcessStartTime(getpid());
  h->dataSize = size;
  snprintf(h->name, sizeof h->name, "%s", name.c_str());
  h->state.store(kStateLive, std::memory_order_release);
  return seg;
}

std::shared_ptr<Segment> Segment::Attach(const ShmInfo& info, Result* err) {
  // Only files in our directory, with our naming: a hostile peer cannot make us map /etc/...
  if (info.path.rfind(std::string(kShmDir) + "/seg-", 0) != 0 || info.path.find("..") != std::string::npos)
    return *err = Result::Fail(kNotSupported, "peer reported an unexpected shared-memory path"), nullptr;
  int fd = open(info.path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return *err = Result::Fail(kNotSupported, "cannot open peer segment file: " + std::string(strerror(errno))), nullptr;
  struct stat st;
  if (fstat(fd, &st) < 0 || uint64_t(st.st_ino) != info.ino || uint64_t(st.st_dev) != info.dev ||
      uint64_t(st.st_size) != kShmHeaderSize + info.size || st.st_uid != geteuid()) {
    close(fd);
    return *err = Result::Fail(kNotSupported, "peer segment file is not on this host (identity mismatch)"), nullptr;
  }
  const uint64_t total = kShmHeaderSize + info.size;
  // No MAP_POPULATE: the owner's pages are already resident (allocated and mapped by Create),
  // so a first touch only fills a page-table entry (read faults map up to 16 pages at once).
  // Populating the whole segment up front cost ~15 ms per 256 MiB (and the unmap ~12 ms more)
  // for what is often one small get; the mapping is cached, so later transfers pay nothing.
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return *err = Result::Fail(kNotSupported, std::string("mmap peer segment: ") + strerror(errno)), nullptr;
  auto* h = reinterpret_cast<FileHeader*>(base);
  if (h->magic != kHeaderMagic || h->dataSize != info.size || h->ownerPid != info.ownerPid) {
    munmap(base, total);
    return *err = Result::Fail(kNotSupported, "peer segment file header mismatch"), nullptr;
  }
  std::shared_ptr<Segment> seg(new Segment());
  seg->path_ = info.path;
  seg->base_ = static_cast<uint8_t*>(base);
  seg->size_ = info.size;
  seg->ino_ = info.ino;
  seg->dev_ = info.dev;
  seg->ownerPid_ = info.ownerPid;
  seg->owned_ = false;
  seg->hasGrantKey_ = info.grantRequired;
  if (info.grantRequired && h->version >= 2) {
    memcpy(seg->grantKey_, h->grantKey, kGrantKeySize);
    seg->knowsGrantKey_ = true;
  }
  seg->chunks_ = size_t((info.size + kPopulateChunk - 1) / kPopulateChunk);
  seg->populated_.reset(new std::atomic<uint8_t>[seg->chunks_]);
  for (size_t i = 0; i < seg->chunks_; i++) seg->populated_[i].store(0, std::memory_order_relaxed);
  return seg;
}

void Segment::PrepareWrite(uint64_t offset, uint64_t length) {
  if (!populated_ || length < kPopulateMin || !Contains(offset, length)) return;
  for (uint64_t k = offset / kPopulateChunk; k < chunks_ && k * kPopulateChunk < offset + length; k++) {
    if (populated_[k].load(std::memory_order_relaxed)) continue;
    populated_[k].store(1, std::memory_order_relaxed);  // a race only populates twice
    const uint64_t at = k * kPopulateChunk;
    const uint64_t len = std::min<uint64_t>(kPopulateChunk, size_ - at);
    // data() is page-aligned (after the 4 KiB header); the mapping covers the last page in full.
    // An old kernel without MADV_POPULATE_WRITE answers EINVAL: the copy then just faults.
    (void)madvise(data() + at, size_t((len + 4095) & ~uint64_t(4095)), kMadvPopulateWrite);
  }
}

Segment::~Segment() {
  if (!base_) return;
  if (owned_) Retire();
  munmap(base_, kShmHeaderSize + size_);
}

ShmInfo Segment::info() const {
  ShmInfo i;
  i.path = path_;
  i.ino = ino_;
  i.dev = dev_;
  i.size = size_;
  i.ownerPid = ownerPid_;
  i.grantRequired = hasGrantKey_;
  return i;
}

void Segment::Retire() {
  if (!owned_ || retired_.exchange(true)) return;
  reinterpret_cast<FileHeader*>(base_)->state.store(kStateClosed, std::memory_order_release);
  unlink(path_.c_str());
  std::lock_guard<std::mutex> lock(gOwnedMu);
  gOwned->erase(path_);
}

bool Segment::Live() const {
  if (owned_) return !retired_.load();
  return reinterpret_cast<const FileHeader*>(base_)->state.load(std::memory_order_acquire) == kStateLive &&
         ProcessAlive(ownerPid_);
}

int SweepStaleSegments(std::string* why) {
  DIR* dir = opendir(kShmDir);
  if (!dir) return 0;
  int removed = 0;
  const int self = getpid();
  while (dirent* e = readdir(dir)) {
    int pid = 0;
    char rest[64];
    if (sscanf(e->d_name, "seg-%d-%63s", &pid, rest) != 2 || pid <= 0 || pid == self) continue;
    std::string path = std::string(kShmDir) + "/" + e->d_name;
    bool stale = !ProcessAlive(pid);
    if (!stale) {
      // Same pid, different process (pid reuse): compare the recorded start time.
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      FileHeader h;
      ssize_t n = pread(fd, &h, sizeof h, 0);
      close(fd);
      if (n == ssize_t(sizeof h) && h.magic == kHeaderMagic && h.ownerStartTime != 0 &&
          h.ownerStartTime != ProcessStartTime(pid))
        stale = true;
    }
    if (stale && unlink(path.c_str()) == 0) removed++;
  }
  closedir(dir);
  (void)why;
  return removed;
}

void UnlinkOwnedSegmentFiles() {
  std::lock_guard<std::mutex> lock(gOwnedMu);
  for (const std::string& p : *gOwned) unlink(p.c_str());
  gOwned->clear();
}

}  // namespace mooncake
