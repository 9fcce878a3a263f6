// LayerIndex: every entry of one unpacked layer with the metadata the tar recorded.
//
// The index, not the unpacked tree, is the authority on lower-layer metadata: the tree may have
// been unpacked without root (wrong owners, no device nodes, no setuid), the index is exact.
// Whiteouts (.wh.NAME) become kWhiteout entries named NAME; an opaque marker (.wh..wh..opq)
// sets `opaque` on its directory's entry (creating a directory entry if the tar had none).
// Neither marker exists as a file in the tree.
//
// Paths are relative to the layer root, without leading "/" or "./", components joined by "/";
// the root directory itself is "" (present only if the tar had "./" or it is opaque).
// Entries are sorted by path (byte order), so parents precede children.
//
// Persisted format: see README "Layer index format"; Write/Read round-trip exactly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

enum class EntryType : uint8_t {
  kRegular = 0,
  kDirectory = 1,
  kSymlink = 2,
  kFifo = 3,
  kCharDevice = 4,
  kBlockDevice = 5,
  kSocket = 6,
  kWhiteout = 7,  // deletes the same path in lower layers
};

struct LayerEntry {
  std::string path;
  EntryType type = EntryType::kRegular;
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777); no S_IFMT bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;  // regular files: bytes; symlinks: length of target
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t rdev = 0;        // devices: makedev(major, minor)
  std::string link_target;  // symlinks
  // Entries with the same non-zero group are hard links of one inode; in the tree they are
  // real hard links, so any member's path reaches the data.
  uint32_t hardlink_group = 0;
  bool opaque = false;                                      // directories: hides everything below this path in lower layers
  std::vector<std::pair<std::string, std::string>> xattrs;  // name -> raw value, sorted by name

  bool operator==(const LayerEntry&) const = default;
};

class LayerIndex {
 public:
  std::vector<LayerEntry>& entries() { return entries_; }
  const std::vector<LayerEntry>& entries() const { return entries_; }
  // Sorts by path; call after adding entries out of order.
  void Sort();

  Status Write(const std::filesystem::path& file) const;  // writes the file in place
  static Result<LayerIndex> Read(const std::filesystem::path& file);

 private:
  std::vector<LayerEntry> entries_;
};

// Total content bytes of one unpacked layer as recorded in its index: regular file sizes (a
// hard-link group once) plus symlink target lengths; what Docker calls a layer's size.
uint64_t LayerContentSize(const LayerIndex& index);

}  // namespace layerfs
