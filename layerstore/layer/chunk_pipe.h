// ChunkPipe: a bounded pool of big buffers handed from one producer thread to one consumer
// thread, in order. The producer fills free chunks and pushes them; the consumer pops, uses and
// releases them. Either side can stop early: the producer by Close(error), the consumer by
// Cancel() (the producer's next Acquire() then returns nullptr so it can exit).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

struct Chunk {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
  size_t size = 0;
};

class ChunkPipe {
 public:
  ChunkPipe(size_t chunks, size_t chunk_size) : chunks_(chunks) {
    for (Chunk& c : chunks_) {
      c.data.reset(new char[chunk_size]);
      c.capacity = chunk_size;
      free_.push_back(&c);
    }
  }

  // Producer: a free chunk to fill, or nullptr once the consumer cancelled.
  Chunk* Acquire() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return cancelled_ || !free_.empty(); });
    if (cancelled_) return nullptr;
    Chunk* c = free_.back();
    free_.pop_back();
    c->size = 0;
    return c;
  }
  void Push(Chunk* c) {
    std::lock_guard lk(mu_);
    full_.push_back(c);
    cv_.notify_all();
  }
  // Producer: no more chunks; status says whether the stream ended cleanly.
  void Close(Status status) {
    std::lock_guard lk(mu_);
    closed_ = true;
    producer_status_ = std::move(status);
    cv_.notify_all();
  }

  // Consumer: the next chunk in order, or nullptr at the end of the stream (see status()).
  Chunk* Pop() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closed_ || !full_.empty(); });
    if (full_.empty()) return nullptr;
    Chunk* c = full_.front();
    full_.pop_front();
    return c;
  }
  void Release(Chunk* c) {
    std::lock_guard lk(mu_);
    free_.push_back(c);
    cv_.notify_all();
  }
  void Cancel() {
    std::lock_guard lk(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  // The producer's final status; meaningful once Pop() returned nullptr.
  Status status() {
    std::lock_guard lk(mu_);
    return producer_status_;
  }

 private:
  std::vector<Chunk> chunks_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Chunk*> free_;
  std::deque<Chunk*> full_;
  bool closed_ = false;
  bool cancelled_ = false;
  Status producer_status_;
};

}  // namespace layerfs
