// UpperChanges: what a container changed relative to its image, as `docker diff` prints it:
// one (kind, "/path") per change, sorted by path.
//   C  the path existed in the image and has an entry in the upper (modified, copied up, a
//      directory whose entries changed, or replaced by another type)
//   A  the path did not exist in the image
//   D  an image entry that is gone: whited out, hidden by an opaque dir, renamed away. A
//      deleted directory is one D line, not one per descendant.
// Entries of a renamed lower directory are listed at their new paths (A, or C where the image
// had that path).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "fs/index/merged_index.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct UpperChange {
  char kind;         // 'A', 'C' or 'D'
  std::string path;  // absolute inside the container ("/etc/passwd")
  bool operator==(const UpperChange&) const = default;
};

Result<std::vector<UpperChange>> ListUpperChanges(const std::filesystem::path& upper_dir, const MergedIndex& image);

}  // namespace layerfs
