#include "layerstore/store/system_prune.h"

#include <set>

namespace layerfs {

namespace {

uint64_t StoreBytes(const Store& store) {
  std::set<std::pair<dev_t, ino_t>> seen;
  return AllocatedBytes(store.root(), &seen);
}

}  // namespace

Result<SystemPruneReport> SystemPrune(const Store& store, bool all, std::chrono::seconds min_age) {
  SystemPruneReport r;
  uint64_t before = StoreBytes(store);
  ASSIGN_OR_RETURN(r.images, PruneImages(store, all));
  ASSIGN_OR_RETURN(r.build_cache, BuildCache(store).Prune(all));
  {
    ASSIGN_OR_RETURN(StoreLock lock, store.LockExclusive());
    ASSIGN_OR_RETURN(r.sweep, SweepUnreferenced(store, min_age));
    if (all) {
      ASSIGN_OR_RETURN(SweepReport partial, SweepUnownedPartialLayers(store));
      r.sweep.partial_layers = std::move(partial.partial_layers);
      r.sweep.bytes += partial.bytes;
    }
  }
  uint64_t after = StoreBytes(store);
  r.reclaimed = before > after ? before - after : 0;
  return r;
}

}  // namespace layerfs
