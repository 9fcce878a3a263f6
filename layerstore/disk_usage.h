// Disk accounting for `images` and `system df [-v]`.
//
// One size metric everywhere, the one Docker's overlay2 driver reports: the content bytes of a
// tree (regular file sizes, a hard-link group once, plus symlink target lengths; directories
// count 0). A layer's size comes from its index (LayerContentSize), a container's from a walk
// of its upper/ dir. An image's SIZE is the sum of its layers (logical, as `docker images`);
// system df's Images SIZE counts every layer once however many images share it (what the disk
// holds); SHARED SIZE of an image = its layers also used by another image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "layerstore/container_store.h"
#include "layerstore/image.h"
#include "layerstore/store.h"

namespace layerfs {

// Sizes of layers by diff_id, read from their indexes once and remembered.
class LayerSizes {
 public:
  explicit LayerSizes(const Store& store) : store_(&store) {}
  Result<uint64_t> Get(const Digest& diff_id);
  Result<uint64_t> ImageSize(const Image& image);  // each distinct layer of the image once

 private:
  const Store* store_;
  std::map<Digest, uint64_t> sizes_;
};

// Content bytes below dir (see above); 0 for a missing dir.
uint64_t TreeContentSize(const std::filesystem::path& dir);

struct ImageUsage {
  Image image;
  uint64_t size = 0;         // logical: all its layers
  uint64_t shared_size = 0;  // its layers that another image uses too
  uint64_t unique_size = 0;  // size - shared_size
  int containers = 0;
};

struct ContainerUsage {
  ContainerRecord record;
  uint64_t size = 0;  // upper/ content
  bool active = false;  // mounted
};

struct DiskUsageReport {
  std::vector<ImageUsage> images;
  size_t images_active = 0;        // used by at least one container
  uint64_t images_size = 0;        // every layer once
  uint64_t images_reclaimable = 0; // layers no active image uses
  std::vector<ContainerUsage> containers;
  size_t containers_active = 0;
  uint64_t containers_size = 0;
  uint64_t containers_reclaimable = 0;  // unmounted containers
  size_t build_cache_count = 0;         // build cache records (BuildCache::DiskUsage)
  size_t build_cache_active = 0;
  uint64_t build_cache_size = 0;        // bytes held only by the cache
  uint64_t build_cache_reclaimable = 0;
};

Result<DiskUsageReport> ComputeDiskUsage(const Store& store);

}  // namespace layerfs
