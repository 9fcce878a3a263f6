// FileHandle: what fi->fh points at for an open file. A lower file opened for reading keeps
// serving after another opener copied it up: the first read after the copy-up opens the upper
// copy (kept in upper_fd) so this reader sees the same data as everyone else, as overlayfs does.
// (A passthrough handle cannot switch: see fs/engine/passthrough.h.)
#pragma once

#include <unistd.h>

#include <atomic>

namespace layerfs {

struct FileHandle {
  int fd = -1;  // as opened: lower file (read-only) or upper file
  bool lower = false;
  bool passthrough = false;       // bound to the node's backing file: the kernel does the I/O
  std::atomic<int> upper_fd{-1};  // lower handles only: the upper copy, opened on demand
  // O_DIRECT requests (the open had O_DIRECT, or fcntl(F_SETFL) added it later: each request
  // says which) use the same file reopened with O_DIRECT, so the backing filesystem applies its
  // own alignment rules; fd and upper_fd stay buffered for splice and the page cache.
  std::atomic<int> direct_fd{-1};        // fd reopened with O_DIRECT, on demand
  std::atomic<int> upper_direct_fd{-1};  // upper_fd reopened with O_DIRECT, on demand

  ~FileHandle() {
    for (int f : {fd, upper_fd.load(), direct_fd.load(), upper_direct_fd.load()})
      if (f >= 0) ::close(f);
  }
  // An fd on the upper copy, or -1 if this handle still reads the lower file.
  int UpperFd() const { return lower ? upper_fd.load(std::memory_order_acquire) : fd; }
};

}  // namespace layerfs
