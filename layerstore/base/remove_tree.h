// RemoveTree: deletes a file or a whole directory tree without following symlinks, making
// read-only directories (0555, 0000: unpacked layers keep the tar's modes) writable as needed.
#pragma once

#include <filesystem>

#include "layerstore/base/status.h"

namespace layerfs {

// Removes `path` (and everything below it). A missing path is OK.
Status RemoveTree(const std::filesystem::path& path);
// Removes everything inside directory `dir_fd`, leaving the directory itself.
Status RemoveTreeContents(int dir_fd, const std::string& what);

}  // namespace layerfs
