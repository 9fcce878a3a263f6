// UpperListing: one directory of a container's upper dir, read the way commit and diff need it:
// real entries (sorted by name), the names it whites out (0/0 char devices and ".wh.NAME"
// files), and whether it is opaque or a renamed lower dir (redirect). The markers themselves
// are not entries. Format: docs/upper-format.md (fs/index/upper_format.h).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fs/index/upper_format.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct UpperListing {
  std::vector<std::string> entries;  // sorted, byte order
  std::set<std::string> whiteouts;
  bool opaque = false;
  std::optional<std::string> redirect;  // "/lower/path" of a renamed lower directory
};

// dirfd: the directory itself (opened O_RDONLY | O_DIRECTORY); `where` names it in errors.
Result<UpperListing> ListUpperDir(int dirfd, const UpperFormat& format, const std::string& where);

}  // namespace layerfs
