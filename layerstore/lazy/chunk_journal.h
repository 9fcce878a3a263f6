// ChunkJournal: which chunks of a lazy layer are verified and written, kept on disk so that a
// process killed at any moment loses nothing verified and fetches nothing twice. An
// append-only file of 4-byte little-endian chunk numbers; a chunk is appended only after its
// bytes are in the tree and synced (fdatasync), so a number on disk always means good bytes on
// disk. A torn last record (a crash inside write) is ignored, and that chunk fetched again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "layerstore/base/status.h"
#include "layerstore/base/unique_fd.h"

namespace layerfs {

class ChunkJournal {
 public:
  // Opens (creating) the file; *verified gets `count` flags, set for every chunk it records.
  static Result<ChunkJournal> Open(const std::filesystem::path& file, size_t count, std::vector<bool>* verified);
  Status Append(const std::vector<uint32_t>& chunks);

 private:
  ChunkJournal(UniqueFd fd, std::filesystem::path file) : fd_(std::move(fd)), file_(std::move(file)) {}
  UniqueFd fd_;
  std::filesystem::path file_;
};

}  // namespace layerfs
