// RunJobs: runs job(0..count-1) on at most `concurrency` threads of its own and waits. Meant
// for blocking work (network transfers), which does not belong on TBB's compute workers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace layerfs {

inline void RunJobs(size_t count, size_t concurrency, const std::function<void(size_t)>& job) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < count; i = next++) job(i);
  };
  std::vector<std::thread> threads;
  size_t n = std::min(count, std::max<size_t>(concurrency, 1));
  for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
  if (n > 0) worker();
  for (std::thread& t : threads) t.join();
}

}  // namespace layerfs
