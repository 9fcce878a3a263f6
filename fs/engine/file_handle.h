// FileHandle: what fi->fh points at for an open file. A lower file opened for reading keeps
// serving after another opener copied it up: the first read after the copy-up opens the upper
// copy (kept in upper_fd) so this reader sees the same data as everyone else, as overlayfs does.
// (A passthrough handle cannot switch: see fs/engine/passthrough.h.) A lower handle the daemon
// reads opens its layer file at the first read, not at the open (fs/engine/ops_file.cc).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace layerfs {

struct FileHandle {
  std::atomic<int> fd{-1};  // lower file (read-only; -1 until its first read) or upper file
  bool lower = false;
  uint32_t lower_idx = 0;         // lower handles: the index entry the open found
  bool passthrough = false;       // bound to the node's backing file: the kernel does the I/O
  std::atomic<int> upper_fd{-1};  // lower handles only: the upper copy, opened on demand
  // O_DIRECT requests (the open had O_DIRECT, or fcntl(F_SETFL) added it later: each request
  // says which) use the same file reopened with O_DIRECT, so the backing filesystem applies its
  // own alignment rules; fd and upper_fd stay buffered for splice and the page cache.
  std::atomic<int> direct_fd{-1};        // fd reopened with O_DIRECT, on demand
  std::atomic<int> upper_direct_fd{-1};  // upper_fd reopened with O_DIRECT, on demand

  ~FileHandle() {
    for (int f : {fd.load(), upper_fd.load(), direct_fd.load(), upper_direct_fd.load()})
      if (f >= 0) ::close(f);
  }
  // An fd on the upper copy, or -1 if this handle still reads the lower file.
  int UpperFd() const { return lower ? upper_fd.load(std::memory_order_acquire) : fd.load(); }
};

}  // namespace layerfs
