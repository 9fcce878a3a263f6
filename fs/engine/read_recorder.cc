#include "fs/engine/read_recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace layerfs {

Result<std::unique_ptr<ReadRecorder>> ReadRecorder::Create(const std::string& file) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno("record reads to " + file);
  return std::unique_ptr<ReadRecorder>(new ReadRecorder(std::move(fd)));
}

bool ReadRecorder::FirstOpen(uint32_t node) {
  std::lock_guard lk(mu_);
  return !failed_ && seen_.insert(node).second;
}

// One write per line: O_APPEND keeps lines whole whatever else writes the file.
void ReadRecorder::Append(const std::string& path) {
  std::string line = path + "\n";
  std::lock_guard lk(mu_);
  if (failed_) return;
  if (::write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "layerfs: recording reads stopped: %s\n", std::strerror(errno));
    failed_ = true;
  }
}

}  // namespace layerfs
