#include "layerstore/disk_usage.h"

#include <ftw.h>
#include <sys/stat.h>

#include <set>

#include "layerstore/build_cache.h"
#include "layerstore/image_store.h"
#include "layerstore/layer_store.h"

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

Status AddImages(const Store& store, const std::vector<ContainerRecord>& containers, DiskUsageReport* r) {
  ImageStore images(store);
  ASSIGN_OR_RETURN(std::vector<Image> list, images.List());
  LayerSizes sizes(store);
  std::map<Digest, int> users;  // diff_id -> images using it
  for (const auto& image : list)
    for (const auto& d : DistinctLayers(image)) ++users[d];
  std::set<Digest> active_layers;
  for (auto& image : list) {
    ImageUsage u;
    for (const auto& c : containers) u.containers += c.image_id == image.id() ? 1 : 0;
    for (const auto& d : DistinctLayers(image)) {
      ASSIGN_OR_RETURN(uint64_t size, sizes.Get(d));
      u.size += size;
      if (users[d] > 1) u.shared_size += size;
      if (u.containers > 0) active_layers.insert(d);
    }
    u.unique_size = u.size - u.shared_size;
    r->images_active += u.containers > 0 ? 1 : 0;
    u.image = std::move(image);
    r->images.push_back(std::move(u));
  }
  for (const auto& [d, n] : users) {
    ASSIGN_OR_RETURN(uint64_t size, sizes.Get(d));
    r->images_size += size;
    if (!active_layers.count(d)) r->images_reclaimable += size;
  }
  return Status::Ok();
}

void AddContainers(const Store& store, std::vector<ContainerRecord> containers, DiskUsageReport* r) {
  ContainerStore cs(store);
  for (auto& c : containers) {
    ContainerUsage u;
    u.size = TreeContentSize(cs.upper_dir(c.id));
    u.active = !c.mountpoint.empty();
    r->containers_active += u.active ? 1 : 0;
    r->containers_size += u.size;
    if (!u.active) r->containers_reclaimable += u.size;
    u.record = std::move(c);
    r->containers.push_back(std::move(u));
  }
}

void AddBuildCache(const Store& store, DiskUsageReport* r) {
  auto usage = BuildCache(store).DiskUsage();
  if (!usage.ok()) return;  // unreadable records count as no cache, as a miss does at build
  r->build_cache_count = usage->records;
  r->build_cache_active = usage->active;
  r->build_cache_size = usage->size;
  r->build_cache_reclaimable = usage->reclaimable;
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
  RETURN_IF_ERROR(AddImages(store, containers, &r));
  AddContainers(store, std::move(containers), &r);
  AddBuildCache(store, &r);
  return r;
}

}  // namespace layerfs
