// OpenHandles: every FileHandle the kernel holds as fi->fh. The kernel sends RELEASE
// asynchronously and drops it if the connection ends first (an unmount right after a close,
// an mmap that outlives its fd), so handles still here when the filesystem goes away are
// closed then instead of leaking their fds. Thread-safe; one short lock per open and release.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "fs/engine/file_handle.h"

namespace layerfs {

class OpenHandles {
 public:
  // Keeps h until Release; the pointer is what fi->fh carries.
  FileHandle* Adopt(std::unique_ptr<FileHandle> h) {
    FileHandle* raw = h.get();
    std::lock_guard lock(mu_);
    handles_.emplace(raw, std::move(h));
    return raw;
  }
  // Closes and frees h (its RELEASE came).
  void Release(FileHandle* h) {
    std::unique_ptr<FileHandle> gone;
    std::lock_guard lock(mu_);
    if (auto it = handles_.find(h); it != handles_.end()) {
      gone = std::move(it->second);
      handles_.erase(it);
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<FileHandle*, std::unique_ptr<FileHandle>> handles_;
};

}  // namespace layerfs
