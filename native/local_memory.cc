#include "local_memory.h"

namespace mooncake {

Result LocalMemory::Register(Napi::Value holder, uint8_t* data, size_t length) {
  if (length == 0 || data == nullptr) return Result::Fail(kInvalidParams, "cannot register an empty buffer");
  const uintptr_t start = reinterpret_cast<uintptr_t>(data);
  if (start > UINTPTR_MAX - length) return Result::Fail(kInvalidParams, "buffer wraps the address space");
  auto next = regions_.lower_bound(start);
  if (next != regions_.end() && next->first < start + length)
    return Result::Fail(kInvalidParams, "the buffer overlaps a registered buffer");
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.length > start)
      return Result::Fail(kInvalidParams, "the buffer overlaps a registered buffer");
  }
  Region& r = regions_[start];
  r.start = start;
  r.length = length;
  r.ref = Napi::Persistent(holder);
  return Result::Ok();
}

Result LocalMemory::Unregister(uint8_t* data, size_t length, bool* busy) {
  auto it = regions_.find(reinterpret_cast<uintptr_t>(data));
  if (it == regions_.end() || it->second.length != length)
    return Result::Fail(kInvalidParams, "the buffer is not registered (pass the same buffer that was registered)");
  if (it->second.inflight > 0) {
    it->second.closing = true;
    *busy = true;
    return Result::Ok();
  }
  *busy = false;
  regions_.erase(it);
  return Result::Ok();
}

Result LocalMemory::Pin(uint8_t* data, size_t length, uintptr_t* key) {
  size_t ignored;
  return Pin(data, length, key, &ignored);
}

Result LocalMemory::Pin(uint8_t* data, size_t length, uintptr_t* key, size_t* regLength) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(data);
  auto it = regions_.upper_bound(a);
  if (it == regions_.begin()) return Result::Fail(kInvalidParams, "local memory is not inside a registered buffer");
  --it;
  Region& r = it->second;
  if (a - r.start > r.length || length > r.length - (a - r.start))
    return Result::Fail(kInvalidParams, "local memory is not inside a registered buffer");
  if (r.closing) return Result::Fail(kInvalidParams, "the registered buffer is being unregistered");
  r.inflight++;
  *key = r.start;
  *regLength = r.length;
  return Result::Ok();
}

void LocalMemory::Unpin(uintptr_t key) {
  auto it = regions_.find(key);
  if (it != regions_.end()) it->second.inflight--;
}

}  // namespace mooncake
