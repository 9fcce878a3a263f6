// ReadRecorder: the image files a container opens, in the order of their first open, one path
// per line (relative to the image root). This is how a prefetch list is made (`layerfs mount
// --record-reads FILE`, then `layerfs push --estargz --prefetch-list FILE`): the files a
// command needs first go first in its eStargz layers, so a lazy mount fetches them first.
// Only files of the image count (lower files, also when opened to be copied up); files the
// container made do not. Each line is written as it happens (O_APPEND), so a container killed
// mid-run leaves a usable list. Thread-safe: FUSE workers call Opened at once.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "layerstore/base/status.h"
#include "layerstore/base/unique_fd.h"

namespace layerfs {

class ReadRecorder {
 public:
  // Creates (or truncates) file.
  static Result<std::unique_ptr<ReadRecorder>> Create(const std::string& file);

  // Whether this is the first open of merged-index entry `node`; if so, the caller appends its
  // path (FirstOpen first, so a path is only computed once per file).
  bool FirstOpen(uint32_t node);
  void Append(const std::string& path);

 private:
  explicit ReadRecorder(UniqueFd fd) : fd_(std::move(fd)) {}

  UniqueFd fd_;
  std::mutex mu_;  // guards seen_ and failed_
  std::unordered_set<uint32_t> seen_;
  bool failed_ = false;  // one line in the daemon's log, then no more recording
};

}  // namespace layerfs
