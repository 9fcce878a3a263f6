#include "layerstore/store/disk_usage.h"

#include <ftw.h>
#include <sys/stat.h>

#include <set>

#include "layerstore/layer/layer_index.h"
#include "layerstore/store/build_cache.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/lazy_layer_lock.h"
#include "layerstore/store/store_gc.h"

namespace layerfs {

namespace {

thread_local uint64_t tl_total;
thread_local std::set<std::pair<dev_t, ino_t>>* tl_links;

int AddEntry(const char*, const struct stat* st, int, FTW*) {
  if (S_ISDIR(st->st_mode)) return 0;
  if (st->st_nlink > 1 && !tl_links->insert({st->st_dev, st->st_ino}).second) return 0;
  if (S_ISREG(st->st_mode) || S_ISLNK(st->st_mode)) tl_total += static_cast<uint64_t>(st->st_size);
  return 0;
}

std::set<Digest> DistinctLayers(const Image& image) { return {image.diff_ids.begin(), image.diff_ids.end()}; }

uint64_t OwnBytes(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

// Allocated bytes of the store's items (a blob file, a layer dir, a chain dir, ...), measured
// once each; an inode two items share goes to the first one measured.
class ItemSizes {
 public:
  uint64_t Get(const fs::path& item) {
    auto [it, added] = bytes_.try_emplace(item, 0);
    if (added) it->second = AllocatedBytes(item, &seen_);
    return it->second;
  }

 private:
  std::map<fs::path, uint64_t> bytes_;
  std::set<std::pair<dev_t, ino_t>> seen_;
};

// What an image keeps on disk: manifest(s), config and layer blobs, layer dirs, merged indexes
// of its chain's prefixes (mounting any prefix builds one).
std::set<fs::path> ItemsOf(const Store& store, const Image& image) {
  std::set<fs::path> out;
  for (const auto& b : image.blobs()) out.insert(store.blob_path(b));
  std::vector<Digest> prefix;
  for (const auto& d : image.diff_ids) {
    out.insert(store.layer_dir(d));
    prefix.push_back(d);
    out.insert(store.chain_dir(ChainId(prefix)));
  }
  return out;
}

void AddContainers(const Store& store, std::vector<ContainerRecord> containers, ItemSizes* sizes, DiskUsageReport* r) {
  for (auto& c : containers) {
    ContainerUsage u;
    u.size = sizes->Get(ContainerStore(store).dir(c.id));
    u.active = !c.mountpoint.empty();
    r->containers_active += u.active ? 1 : 0;
    r->containers_size += u.size;
    if (!u.active) r->containers_reclaimable += u.size;
    u.record = std::move(c);
    r->containers.push_back(std::move(u));
  }
}

// Per image: its items' bytes, shared = the items another image uses too. Returns the bytes
// of the items that images with containers use (not reclaimable).
Result<uint64_t> AddImages(const Store& store, const std::vector<Image>& list, const std::vector<ContainerRecord>& containers,
                           ItemSizes* sizes, DiskUsageReport* r) {
  std::map<fs::path, int> users;
  std::vector<std::set<fs::path>> items;
  for (const auto& image : list) {
    items.push_back(ItemsOf(store, image));
    for (const auto& p : items.back()) ++users[p];
  }
  LayerSizes content(store);
  std::set<fs::path> active;
  for (size_t i = 0; i < list.size(); ++i) {
    ImageUsage u;
    u.image = list[i];
    for (const auto& c : containers) u.containers += c.image_id == u.image.id() ? 1 : 0;
    for (const auto& p : items[i]) {
      uint64_t bytes = sizes->Get(p);
      u.size += bytes;
      if (users[p] > 1) u.shared_size += bytes;
      if (u.containers > 0) active.insert(p);
    }
    u.unique_size = u.size - u.shared_size;
    ASSIGN_OR_RETURN(u.content_size, content.ImageSize(u.image));
    r->images_active += u.containers > 0 ? 1 : 0;
    r->images.push_back(std::move(u));
  }
  uint64_t active_bytes = 0;
  for (const auto& p : active) active_bytes += sizes->Get(p);
  return active_bytes;
}

// Every layer dir in the store, with its blob when an image names one.
void AddLayers(const Store& store, const std::vector<Image>& list, ItemSizes* sizes, DiskUsageReport* r) {
  std::map<Digest, Digest> blob_of;
  std::map<Digest, int> images;
  for (const auto& image : list) {
    for (size_t i = 0; i < image.diff_ids.size() && i < image.layers.size(); ++i) blob_of[image.diff_ids[i]] = image.layers[i].digest;
    for (const auto& d : DistinctLayers(image)) ++images[d];
  }
  LayerSizes content(store);
  for (const Digest& d : LayerStore(store).List()) {
    LayerUsage u;
    u.diff_id = d;
    if (auto it = blob_of.find(d); it != blob_of.end()) {
      u.blob = it->second;
      u.blob_size = sizes->Get(store.blob_path(u.blob));
    }
    u.unpacked_size = sizes->Get(store.layer_dir(d));
    auto c = content.Get(d);
    u.content_size = c.ok() ? *c : 0;
    u.images = images[d];
    r->layers.push_back(std::move(u));
  }
}

// Record files and the items of their images that no image or container uses.
void AddBuildCache(const Store& store, const std::set<fs::path>& used_by_images, ItemSizes* sizes, DiskUsageReport* r) {
  auto usage = BuildCache(store).DiskUsage();
  if (usage.ok()) {
    r->build_cache_count = usage->records;
    r->build_cache_active = usage->active;
  }
  std::set<fs::path> held;
  ImageStore images(store);
  for (const CacheRecord& rec : BuildCache(store).List()) {
    held.insert(store.blob_path(rec.manifest.digest));
    if (!rec.layer_blob.empty()) held.insert(store.blob_path(rec.layer_blob));
    if (!rec.diff_id.empty()) held.insert(store.layer_dir(rec.diff_id));
    auto image = images.LoadImage(rec.manifest);
    if (!image.ok()) continue;
    held.insert(store.blob_path(image->id()));
    if (!image->diff_ids.empty()) held.insert(store.chain_dir(image->chain_id()));
  }
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store.buildcache_dir(), ec)) bytes += sizes->Get(e.path());
  for (const auto& p : held)
    if (!used_by_images.count(p)) bytes += sizes->Get(p);
  r->build_cache_size = bytes;
  r->build_cache_reclaimable = bytes;
}

// lazy/<hex>/: a layer being pulled lazily, owned (being fetched) or left by a process that
// stopped: resumable by a remount of a container whose image needs it (containers_need), and
// otherwise what `system prune -a` removes.
void AddPartialLayers(const Store& store, const std::set<Digest>& containers_need, ItemSizes* sizes,
                      DiskUsageReport* r) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store.lazy_dir(), ec)) {
    auto d = Digest::Parse("sha256:" + e.path().filename().string());
    if (!d.ok()) continue;
    PartialLayerUsage u{*d, sizes->Get(e.path()), LazyLayerLock::Held(e.path())};
    r->partial_active += u.owned ? 1 : 0;
    r->partial_size += u.size;
    if (!u.owned && !PartialLayerNeeded(store, containers_need, u.diff_id)) r->partial_reclaimable += u.size;
    r->partial_layers.push_back(u);
  }
}

// The layout itself: the root, its files, and the top-level directories' own blocks.
uint64_t LayoutBytes(const Store& store) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store.root(), ec))
    if (!e.is_directory(ec)) bytes += OwnBytes(e.path());
  for (const fs::path& p : {store.root(), store.root() / "blobs", store.blobs_dir(), store.layers_dir(),
                            store.chains_dir(), store.containers_dir(), store.buildcache_dir(), store.tmp_dir(),
                            store.lazy_dir()})
    bytes += OwnBytes(p);
  return bytes;
}

}  // namespace

Result<uint64_t> LayerSizes::Get(const Digest& diff_id) {
  if (auto it = sizes_.find(diff_id); it != sizes_.end()) return it->second;
  ASSIGN_OR_RETURN(LayerIndex index, LayerStore(*store_).ReadIndex(diff_id));
  uint64_t size = LayerContentSize(index);
  sizes_[diff_id] = size;
  return size;
}

Result<uint64_t> LayerSizes::ImageSize(const Image& image) {
  uint64_t total = 0;
  for (const auto& d : DistinctLayers(image)) {
    ASSIGN_OR_RETURN(uint64_t size, Get(d));
    total += size;
  }
  return total;
}

uint64_t TreeContentSize(const fs::path& dir) {
  std::set<std::pair<dev_t, ino_t>> links;
  tl_total = 0;
  tl_links = &links;
  ::nftw(dir.c_str(), AddEntry, 32, FTW_PHYS);
  tl_links = nullptr;
  return tl_total;
}

Result<DiskUsageReport> ComputeDiskUsage(const Store& store) {
  DiskUsageReport r;
  std::vector<ContainerRecord> containers = ContainerStore(store).List();
  ASSIGN_OR_RETURN(std::vector<Image> list, ImageStore(store).List());
  ItemSizes sizes;
  AddContainers(store, containers, &sizes, &r);
  ASSIGN_OR_RETURN(uint64_t active_bytes, AddImages(store, list, containers, &sizes, &r));
  AddLayers(store, list, &sizes, &r);
  std::set<fs::path> used;
  std::set<Digest> containers_need;
  for (const auto& image : list) used.merge(ItemsOf(store, image));
  for (const auto& c : containers) {
    auto image = ImageStore(store).LoadImage({kOciManifestType, c.manifest_digest, 0, nlohmann::json(), nlohmann::json()});
    if (!image.ok()) continue;
    used.merge(ItemsOf(store, *image));
    containers_need.insert(image->diff_ids.begin(), image->diff_ids.end());
  }
  AddBuildCache(store, used, &sizes, &r);
  AddPartialLayers(store, containers_need, &sizes, &r);
  std::set<std::pair<dev_t, ino_t>> seen;
  r.store_total = AllocatedBytes(store.root(), &seen);
  uint64_t others = r.containers_size + r.build_cache_size + r.partial_size;
  r.images_size = r.store_total > others ? r.store_total - others : 0;
  // containerd's snapshots (<root>/snapshots, layerstore/snapshots) count with the images;
  // prune never removes them (containerd does, through the snapshotter): not reclaimable.
  std::set<std::pair<dev_t, ino_t>> snapshot_inodes;
  uint64_t kept = active_bytes + LayoutBytes(store) + AllocatedBytes(store.root() / "snapshots", &snapshot_inodes);
  r.images_reclaimable = r.images_size > kept ? r.images_size - kept : 0;
  return r;
}

}  // namespace layerfs
