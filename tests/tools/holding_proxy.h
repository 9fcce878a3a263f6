// HoldingProxy: a TCP proxy on 127.0.0.1 in front of a local HTTP server (the test registry)
// that, while holding, leaves unanswered every request whose Range asks for more than
// `hold_above` bytes: a lazy mount's background fetch (one large Range request per batch)
// stalls half way while smaller requests go through, so a test can act at that moment (kill
// the daemon, try a second owner). One request per connection: the registry client opens a
// connection per request. Everything closes and every thread is joined when it dies.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace layerfs::testing {

class HoldingProxy {
 public:
  HoldingProxy(int target_port, uint64_t hold_above);
  ~HoldingProxy();
  HoldingProxy(const HoldingProxy&) = delete;
  HoldingProxy& operator=(const HoldingProxy&) = delete;

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // The held requests go on, and no more are held.
  void StopHolding() { holding_ = false; }
  int held() const { return held_; }  // requests held so far

 private:
  void Accept();
  void Serve(int client);
  bool ShouldHold(const std::string& head) const;

  int target_port_;
  uint64_t hold_above_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> holding_{true};
  std::atomic<bool> stop_{false};
  std::atomic<int> held_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;
};

}  // namespace layerfs::testing
