// Disk accounting for `images`, `history` and `system df [-v]`.
//
// Two measures. Content size (what `images` and `history` show, as Docker's overlay2 reports
// it): regular file sizes, a hard-link group once, plus symlink target lengths, directories 0;
// a layer's comes from its index (LayerContentSize, layer_index.h), an image's is the sum of its layers.
// Disk size (what `system df` shows): allocated bytes, st_blocks * 512, every inode once, as
// `du -s --block-size=1 <root>` counts them. The store holds each layer twice over (the
// compressed blob and the unpacked tree with its index) plus merged-index caches; system df
// counts all of it, each once however many images share it, so its rows add up to the du of
// the store: Containers = containers/<id>/, Build Cache = what only cache records hold,
// Partial Layers = lazy/<hex>/ (layers being pulled lazily: sparse, so allocated bytes are what
// has arrived), Images = everything else (image blobs, layers, merged indexes, index.json and
// the layout itself, and unreferenced leftovers, which are reclaimable).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "layerstore/oci/image.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/store.h"

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

// Disk sizes below: allocated bytes.
struct ImageUsage {
  Image image;
  uint64_t size = 0;          // everything the image uses: blobs, layer trees and indexes, merged indexes
  uint64_t shared_size = 0;   // the part another image uses too
  uint64_t unique_size = 0;   // size - shared_size
  uint64_t content_size = 0;  // logical, as `images` shows it
  int containers = 0;
};

struct LayerUsage {
  Digest diff_id;
  Digest blob;                 // the compressed blob (empty when no image names it)
  uint64_t blob_size = 0;      // allocated bytes of the blob
  uint64_t unpacked_size = 0;  // allocated bytes of layers/<diff_id>/ (tree and index)
  uint64_t content_size = 0;   // logical
  int images = 0;              // images using the layer
};

struct ContainerUsage {
  ContainerRecord record;
  uint64_t size = 0;    // containers/<id>/ (upper, work, metadata)
  bool active = false;  // mounted
};

struct PartialLayerUsage {
  Digest diff_id;
  uint64_t size = 0;   // allocated bytes of lazy/<hex>/
  bool owned = false;  // a process is pulling it (LazyLayerLock)
};

struct DiskUsageReport {
  std::vector<ImageUsage> images;
  std::vector<LayerUsage> layers;   // every layer in the store, by diff_id
  size_t images_active = 0;         // used by at least one container
  uint64_t images_size = 0;         // store total - containers - build cache
  uint64_t images_reclaimable = 0;  // not used by an image with a container, and not the layout itself
  std::vector<ContainerUsage> containers;
  size_t containers_active = 0;
  uint64_t containers_size = 0;
  uint64_t containers_reclaimable = 0;  // unmounted containers
  size_t build_cache_count = 0;         // build cache records (BuildCache::DiskUsage)
  size_t build_cache_active = 0;
  uint64_t build_cache_size = 0;  // records and what only they hold
  uint64_t build_cache_reclaimable = 0;
  std::vector<PartialLayerUsage> partial_layers;
  size_t partial_active = 0;  // owned
  uint64_t partial_size = 0;
  uint64_t partial_reclaimable = 0;  // what prune -a removes: not owned, no container's image needs it
  uint64_t store_total = 0;          // allocated bytes under the store root (du)
};

Result<DiskUsageReport> ComputeDiskUsage(const Store& store);

}  // namespace layerfs
