// LazyLayerLock: who owns a lazy layer's directory (lazy/<hex>/, docs/lazy-pull.md). The owner
// holds an exclusive flock(2) on <dir>/lock for as long as it fetches into the directory and
// keeps its pid in the file: a second process is refused with EBUSY naming that pid, and
// `system prune -a` removes only directories nobody owns (store_gc.h). A new directory is locked in tmp/,
// before it is renamed into place, so it is never unowned between its creation and its first
// use. A fork shares the lock (one open file description); the process that goes on calls
// RecordPid(). Closing the lock (destruction, or the owner's death) frees the directory.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "layerstore/base/status.h"
#include "layerstore/base/unique_fd.h"

namespace layerfs {

class LazyLayerLock {
 public:
  LazyLayerLock() = default;
  // Takes dir's lock, creating the lock file if missing. EBUSY ("<what> is being pulled lazily
  // by another process (pid N)") while another process owns dir; ENOENT or ESTALE when dir
  // went away (renamed or removed) before the lock was ours: look again.
  static Result<LazyLayerLock> Acquire(const std::filesystem::path& dir, const std::string& what);
  // Whether a process owns dir right now. A probe: it takes and drops a shared lock, which an
  // Acquire at that moment waits out.
  static bool Held(const std::filesystem::path& dir);
  // Puts this process's pid in the lock file (after a fork).
  void RecordPid();

 private:
  explicit LazyLayerLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  pid_t pid_ = 0;  // the pid in the file
};

}  // namespace layerfs
