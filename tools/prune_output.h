// What `image prune`, `rmi` and `system prune` share on the terminal: Docker's confirmation
// prompt and its lines for untagged and deleted images.
#pragma once

#include <string>

#include "layerstore/store/image_gc.h"

namespace layerfs::cli {

// Prints warning + "Are you sure you want to continue? [y/N] " and reads one line from stdin.
bool Confirm(const std::string& warning);
// "Untagged: x" / "Deleted: sha256:..." (rmi), or lower case (prune_style: image/system prune).
void PrintRemoval(const RemovalReport& report, bool prune_style);

}  // namespace layerfs::cli
