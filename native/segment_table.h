// The segments one engine serves, by name. Lookups come from server threads, changes from JS.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "segment.h"

namespace mooncake {

class SegmentTable {
 public:
  bool Add(const std::shared_ptr<Segment>& seg) {
    std::lock_guard<std::mutex> lock(mu_);
    return byName_.emplace(seg->name(), seg).second;
  }
  std::shared_ptr<Segment> Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = byName_.find(name);
    return it == byName_.end() ? nullptr : it->second;
  }
  std::shared_ptr<Segment> Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = byName_.find(name);
    if (it == byName_.end()) return nullptr;
    auto seg = it->second;
    byName_.erase(it);
    return seg;
  }
  std::vector<std::shared_ptr<Segment>> RemoveAll() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<Segment>> all;
    for (auto& kv : byName_) all.push_back(kv.second);
    byName_.clear();
    return all;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Segment>> byName_;
};

}  // namespace mooncake
