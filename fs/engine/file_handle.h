// FileHandle: what fi->fh points at for an open file. A lower file opened for reading keeps
// serving after another opener copied it up: the first read after the copy-up opens the upper
// copy (kept in upper_fd) so this reader sees the same data as everyone else, as overlayfs does.
// (A passthrough handle cannot switch: see fs/engine/passthrough.h.)
#pragma once

#include <unistd.h>

#include <atomic>

namespace layerfs {

struct FileHandle {
  int fd = -1;          // as opened: lower file (read-only) or upper file
  bool lower = false;
  bool passthrough = false;  // bound to the node's backing file: the kernel does the I/O
  std::atomic<int> upper_fd{-1};  // lower handles only: the upper copy, opened on demand

  ~FileHandle() {
    if (fd >= 0) ::close(fd);
    int u = upper_fd.load();
    if (u >= 0) ::close(u);
  }
  // An fd on the upper copy, or -1 if this handle still reads the lower file.
  int UpperFd() const { return lower ? upper_fd.load(std::memory_order_acquire) : fd; }
};

}  // namespace layerfs
