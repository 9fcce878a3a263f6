// SystemPrune: `system prune [-a]`. In order: dangling images (all: every image no container
// uses), build cache records (all: every record; otherwise those no image builds on), then
// the store-wide sweep of unreferenced blobs, layers and merged indexes at least `min_age` old
// and of dead processes' tmp/ litter, and (all) of the partial layers no process is pulling
// and no container needs (store_gc.h). Containers are kept, mounted or not: an unmounted
// layerfs container is a stopped one whose upper is the user's data (`rm` removes it).
#pragma once

#include <chrono>
#include <cstdint>

#include "layerstore/store/build_cache.h"
#include "layerstore/store/image_gc.h"
#include "layerstore/store/store.h"
#include "layerstore/store/store_gc.h"

namespace layerfs {

struct SystemPruneReport {
  RemovalReport images;
  BuildCache::PruneReport build_cache;
  SweepReport sweep;
  uint64_t reclaimed = 0;  // allocated bytes: du of the store before minus after
};

// Writers publish blobs before recording them (store_gc.h); an hour is far longer than that gap.
inline constexpr std::chrono::seconds kUnreferencedMinAge{3600};

Result<SystemPruneReport> SystemPrune(const Store& store, bool all, std::chrono::seconds min_age = kUnreferencedMinAge);

}  // namespace layerfs
