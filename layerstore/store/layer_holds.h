// LayerHolds: store layers used by a front door that keeps records of its own instead of image
// records: the containerd snapshotter, whose committed snapshots can be layers/<diff_id> that
// `layerfs pull` or `load` put there. Image removal (rmi, image prune) and `system prune` keep
// every held layer and held chain's merged index, so a container started through containerd
// never loses its lowers to a layerfs command.
//
// <root>/holds/<holder>.json, one file per holder, replaced whole (WriteFileAtomic). A holder
// checks that a layer exists and writes its hold under the store's shared lock, which the
// collectors' exclusive lock excludes: a layer is never deleted between the check and the hold.
#pragma once

#include <set>
#include <string>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct HeldLayers {
  std::set<Digest> diff_ids;
  std::set<Digest> chains;  // merged-index caches (chains/<chain_id>) kept too
};

class LayerHolds {
 public:
  explicit LayerHolds(const Store& store) : store_(&store) {}

  // Replaces what `holder` ([a-z0-9-]+) holds; an empty set removes its file.
  Status Set(const std::string& holder, const HeldLayers& held) const;
  // The union over all holders; EINVAL naming the file when one does not parse.
  Result<HeldLayers> All() const;

 private:
  const Store* store_;
};

}  // namespace layerfs
