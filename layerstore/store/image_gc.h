// Image removal: `rmi`, `image prune`. Untags, forgets images nothing refers to, and deletes
// what only they used: manifest/config/layer blobs, layers/<diff_id>, chains/<chain_id>.
//
// Docker's rules: removing by tag untags; the image itself goes with its last tag. Removing by
// ID (or name@digest) deletes the image and needs force when several tags point at it. An image
// a container uses is never deleted: without force that is an error; with force it is only
// untagged (kept dangling so the container keeps its layers).
//
// Under the store's exclusive lock index.json is rewritten first, then the unreferenced files
// are removed (through tmp/): a crash in between leaves unreferenced files, never a dangling
// reference. Only files of the removed images are candidates, never blobs someone else is
// still writing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct RemovalReport {
  std::vector<std::string> untagged;   // normalized references
  std::vector<Digest> deleted_images;  // image IDs
  std::vector<Digest> deleted_layers;  // diff_ids
  uint64_t reclaimed = 0;              // content bytes of the deleted layers
};

Result<RemovalReport> RemoveImage(const Store& store, std::string_view ref_or_id, bool force);
// Dangling (untagged) images no container uses; all = every image no container uses.
Result<RemovalReport> PruneImages(const Store& store, bool all);

}  // namespace layerfs
