// FetchGate: how the requests of one lazily pulled image share its link. A reader (a process
// blocked in read(2) on a file not yet local) never waits for the gate; the background
// completion does: it may have `jobs` Range requests in flight while no reader is fetching, and
// one while any is. So a container's reads are not queued behind megabytes of prefetch, and the
// link is never idle while a reader thinks (docs/lazy-pull.md, "Sharing the link").
// One gate per image: its layers share the link and the limit. Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>

namespace layerfs {

class FetchGate {
 public:
  explicit FetchGate(unsigned jobs) : jobs_(jobs == 0 ? 1 : jobs) {}

  // Around a reader's request.
  class Reader {
   public:
    explicit Reader(FetchGate& gate);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

   private:
    FetchGate& gate_;
  };

  // Around a background request: the constructor waits for a slot.
  class Background {
   public:
    explicit Background(FetchGate& gate);
    ~Background();
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

   private:
    FetchGate& gate_;
  };

  unsigned readers() const;
  unsigned background() const;

 private:
  unsigned BackgroundLimit() const { return readers_ > 0 ? 1 : jobs_; }

  const unsigned jobs_;
  mutable std::mutex mu_;  // guards the counts
  std::condition_variable slot_freed_;
  unsigned readers_ = 0;
  unsigned background_ = 0;
};

}  // namespace layerfs
