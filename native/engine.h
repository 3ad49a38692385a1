// One transfer engine: the segments it owns and serves, its server and its client.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client.h"
#include "segment_table.h"
#include "server.h"

namespace mooncake {

struct EngineOptions {
  ServerOptions server;
  ClientOptions client;
};

class Engine {
 public:
  explicit Engine(EngineOptions options) : opt_(std::move(options)) {}
  ~Engine() { Close(); }

  Result Start(std::vector<std::string>* endpoints) {
    if (!opt_.server.hosts.empty()) {
      server_ = std::make_unique<Server>(opt_.server, &segments_);
      Result r = server_->Start(endpoints);
      if (!r.ok()) {
        server_.reset();
        return r;
      }
    }
    client_ = std::make_unique<Client>(opt_.client);
    client_->Start();
    return Result::Ok();
  }

  // Stops accepting, fails queued work, waits for threads, then retires the segments (their
  // memory stays mapped while a JS window or transfer still holds it).
  void Close() {
    if (server_) server_->Stop();
    if (client_) client_->Stop();
    for (auto& seg : segments_.RemoveAll()) seg->Retire();
  }

  SegmentTable& segments() { return segments_; }
  Server* server() { return server_.get(); }
  Client* client() { return client_.get(); }

 private:
  EngineOptions opt_;
  SegmentTable segments_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace mooncake
