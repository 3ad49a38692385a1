// Registered local buffers: JS memory that transfers read and write in place. A registration
// holds a strong reference (GC cannot free the memory) and counts the batches using it, so an
// unregister can wait for them. Touched only on the JS thread.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common.h"

namespace mooncake {

class LocalMemory {
 public:
  struct Region {
    uintptr_t start = 0;
    size_t length = 0;
    int inflight = 0;
    bool closing = false;
    Napi::Reference<Napi::Value> ref;
  };

  Result Register(Napi::Value holder, uint8_t* data, size_t length);
  // kOk and *busy=false when removed; *busy=true when batches still use it (new ones are then
  // refused until it is removed).
  Result Unregister(uint8_t* data, size_t length, bool* busy);
  // Finds the registration containing [data, data+length) and pins it for one batch.
  Result Pin(uint8_t* data, size_t length, uintptr_t* key);
  // Same, also telling the registration's extent (so a batch pins each registration once and
  // checks further requests against the extent).
  Result Pin(uint8_t* data, size_t length, uintptr_t* key, size_t* regLength);
  void Unpin(uintptr_t key);
  size_t count() const { return regions_.size(); }
  void Clear() { regions_.clear(); }

 private:
  std::map<uintptr_t, Region> regions_;
};

}  // namespace mooncake
