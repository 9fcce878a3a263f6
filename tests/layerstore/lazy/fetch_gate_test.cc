// FetchGate: background requests are limited to `jobs`, and to one while a reader fetches;
// readers never wait.
#include "layerstore/lazy/fetch_gate.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace layerfs {
namespace {

using namespace std::chrono_literals;

// Background slots taken by threads that hold them until `release` is set.
class Holders {
 public:
  explicit Holders(FetchGate& gate) : gate_(gate) {}
  ~Holders() {
    release_ = true;
    for (auto& t : threads_) t.join();
  }
  void Start(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        FetchGate::Background slot(gate_);
        ++inside_;
        while (!release_) std::this_thread::sleep_for(1ms);
      });
  }
  int inside() const { return inside_; }

 private:
  FetchGate& gate_;
  std::atomic<int> inside_{0};
  std::atomic<bool> release_{false};
  std::vector<std::thread> threads_;
};

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 2000 && !cond(); ++i) std::this_thread::sleep_for(1ms);
  return cond();
}

TEST(FetchGateTest, BackgroundRequestsAreLimitedToJobs) {
  FetchGate gate(3);
  Holders holders(gate);
  holders.Start(5);
  ASSERT_TRUE(WaitFor([&] { return holders.inside() == 3; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(holders.inside(), 3);
  EXPECT_EQ(gate.background(), 3u);
}

TEST(FetchGateTest, AReaderLeavesTheBackgroundOneRequestAndNeverWaits) {
  FetchGate gate(3);
  Holders holders(gate);
  {
    holders.Start(1);
    ASSERT_TRUE(WaitFor([&] { return holders.inside() == 1; }));
    FetchGate::Reader reader(gate);  // does not wait, though the background holds a slot
    EXPECT_EQ(gate.readers(), 1u);
    FetchGate::Reader another(gate);
    holders.Start(2);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(holders.inside(), 1);  // the limit is one while readers fetch
  }
  EXPECT_TRUE(WaitFor([&] { return holders.inside() == 3; }));  // readers gone: jobs again
  EXPECT_EQ(gate.readers(), 0u);
}

TEST(FetchGateTest, ZeroJobsMeansOne) {
  FetchGate gate(0);
  Holders holders(gate);
  holders.Start(2);
  ASSERT_TRUE(WaitFor([&] { return holders.inside() == 1; }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(holders.inside(), 1);
}

}  // namespace
}  // namespace layerfs
