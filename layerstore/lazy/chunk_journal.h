// ChunkJournal: which chunks of a lazy layer are verified and written, kept on disk so that a
// process killed at any moment loses nothing verified and fetches nothing twice. An
// append-only file of 4-byte little-endian chunk numbers; a chunk is appended only after its
// bytes are written, so within one boot (one page cache) a number on disk means good bytes on
// disk. Nothing is synced per chunk: the journal records the boot it was written in, and one
// opened after a reboot (a machine crash may have lost written data) is `stale`: the caller
// checks each recorded chunk again and Rewrite()s the journal with those that survived. A torn
// last record (a crash inside write) is dropped, and that chunk fetched again.
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
  // Recorded in another boot than this one: the recorded chunks must be checked again.
  bool stale() const { return stale_; }
  Status Append(const std::vector<uint32_t>& chunks);
  // Replaces the records with `chunks` (synced) and marks the journal as of this boot.
  Status Rewrite(const std::vector<uint32_t>& chunks);

 private:
  ChunkJournal(UniqueFd fd, std::filesystem::path file) : fd_(std::move(fd)), file_(std::move(file)) {}
  std::filesystem::path boot_file() const;
  UniqueFd fd_;
  std::filesystem::path file_;
  bool stale_ = false;
};

}  // namespace layerfs
