#include "layerstore/store/build_cache.h"

#include <ctime>
#include <fstream>
#include <iterator>
#include <set>

#include "layerstore/base/remove_tree.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr std::string_view kKeyVersion = "layerfs-build-cache-v1";

nlohmann::json RecordJson(const CacheRecord& r) {
  return {{"key", r.key.str()},
          {"instruction", r.instruction},
          {"manifest", DescriptorJson(r.manifest)},
          {"layer_blob", r.layer_blob.empty() ? "" : r.layer_blob.str()},
          {"diff_id", r.diff_id.empty() ? "" : r.diff_id.str()},
          {"created", r.created_unix}};
}

Result<Digest> OptionalDigest(const nlohmann::json& j, const char* field, const std::string& what) {
  std::string text = j.value(field, "");
  if (text.empty()) return Digest();
  auto d = Digest::Parse(text);
  if (!d.ok()) return d.status().WithContext(what);
  return d;
}

Result<CacheRecord> ParseRecord(std::string_view bytes, const std::string& what) {
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(bytes, what));
  CacheRecord r;
  try {
    ASSIGN_OR_RETURN(r.key, Digest::Parse(j.at("key").get<std::string>()));
    r.instruction = j.value("instruction", "");
    ASSIGN_OR_RETURN(r.manifest, ParseDescriptor(j.at("manifest"), what));
    ASSIGN_OR_RETURN(r.layer_blob, OptionalDigest(j, "layer_blob", what));
    ASSIGN_OR_RETURN(r.diff_id, OptionalDigest(j, "diff_id", what));
    r.created_unix = j.value("created", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return Status::Error(EINVAL, what + ": " + e.what());
  }
  return r;
}

// What images and containers use: blobs (manifests, configs, layers), diff_ids and layer
// lists (to tell whether a record's image is a prefix of a stored image).
struct InUse {
  std::set<Digest> blobs;
  std::set<Digest> diff_ids;
  std::set<Digest> chains;
  std::vector<std::vector<Digest>> layer_lists;

  void AddImage(const Image& image) {
    for (const auto& b : image.blobs()) blobs.insert(b);
    diff_ids.insert(image.diff_ids.begin(), image.diff_ids.end());
    if (!image.diff_ids.empty()) chains.insert(image.chain_id());
    layer_lists.push_back(image.diff_ids);
  }

  bool HasPrefix(const std::vector<Digest>& prefix) const {
    for (const auto& list : layer_lists)
      if (list.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), list.begin())) return true;
    return false;
  }
};

Result<InUse> ImagesInUse(const Store& store) {
  InUse used;
  ImageStore images(store);
  ASSIGN_OR_RETURN(std::vector<Image> list, images.List());
  for (const Image& image : list) used.AddImage(image);
  for (const ContainerRecord& c : ContainerStore(store).List()) {
    Descriptor d{kOciManifestType, c.manifest_digest, 0, nlohmann::json(), nlohmann::json()};
    auto image = images.LoadImage(d);
    if (image.ok()) used.AddImage(*image);
  }
  return used;
}

// The blobs, layers and chain a record holds.
struct Held {
  std::vector<Digest> blobs;
  std::vector<Digest> diff_ids;
  std::vector<Digest> all_diff_ids;  // the record image's whole layer list
  Digest chain;
};

Held RecordHolds(const Store& store, const CacheRecord& r) {
  Held h;
  h.blobs.push_back(r.manifest.digest);
  if (!r.layer_blob.empty()) h.blobs.push_back(r.layer_blob);
  if (!r.diff_id.empty()) h.diff_ids.push_back(r.diff_id);
  auto image = ImageStore(store).LoadImage(r.manifest);
  if (image.ok()) {
    h.blobs.push_back(image->id());
    h.all_diff_ids = image->diff_ids;
    if (!image->diff_ids.empty()) h.chain = image->chain_id();
  }
  return h;
}

uint64_t HeldBytes(const Store& store, const Held& h, const InUse& used) {
  uint64_t bytes = 0;
  BlobStore blobs(store);
  for (const Digest& b : h.blobs)
    if (!used.blobs.count(b)) bytes += blobs.Size(b).ok() ? *blobs.Size(b) : 0;
  LayerStore layers(store);
  for (const Digest& d : h.diff_ids)
    if (!used.diff_ids.count(d)) bytes += layers.DiskUsage(d).ok() ? *layers.DiskUsage(d) : 0;
  return bytes;
}

}  // namespace

Digest StepKey(const Digest& parent, std::string_view instruction, std::string_view content) {
  Sha256 h;
  auto field = [&](std::string_view s) {
    std::string len = std::to_string(s.size()) + ":";
    h.Update(len);
    h.Update(s);
  };
  field(kKeyVersion);
  field(parent.empty() ? "scratch" : parent.str());
  field(instruction);
  field(content);
  return h.Finish();
}

fs::path BuildCache::RecordPath(const Digest& key) const { return store_->buildcache_dir() / (key.hex() + ".json"); }

Result<std::optional<CacheRecord>> BuildCache::Lookup(const Digest& key) const {
  std::ifstream in(RecordPath(key), std::ios::binary);
  if (!in) return std::optional<CacheRecord>();
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto record = ParseRecord(bytes, RecordPath(key).string());
  if (!record.ok()) return std::optional<CacheRecord>();  // a damaged record is a miss; Put replaces it
  BlobStore blobs(*store_);
  auto image = ImageStore(*store_).LoadImage(record->manifest);
  if (!image.ok()) return std::optional<CacheRecord>();
  for (const auto& l : image->layers)
    if (!blobs.Has(l.digest)) return std::optional<CacheRecord>();
  LayerStore layers(*store_);
  for (const auto& d : image->diff_ids)
    if (!layers.Has(d)) return std::optional<CacheRecord>();
  return std::optional<CacheRecord>(std::move(record).value());
}

Status BuildCache::Put(const CacheRecord& record) const {
  std::error_code ec;
  fs::create_directories(store_->buildcache_dir(), ec);
  if (ec) return Status::Error(ec.value(), "create " + store_->buildcache_dir().string() + ": " + ec.message());
  return WriteFileAtomic(*store_, RecordPath(record.key), RecordJson(record).dump(2));
}

Status BuildCache::Remove(const Digest& key) const {
  std::error_code ec;
  fs::remove(RecordPath(key), ec);
  if (ec) return Status::Error(ec.value(), "remove " + RecordPath(key).string() + ": " + ec.message());
  return Status::Ok();
}

std::vector<CacheRecord> BuildCache::List() const {
  std::vector<CacheRecord> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store_->buildcache_dir(), ec)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto r = ParseRecord(bytes, e.path().string());
    if (r.ok()) out.push_back(std::move(r).value());
  }
  return out;
}

Result<BuildCache::Usage> BuildCache::DiskUsage() const {
  ASSIGN_OR_RETURN(InUse used, ImagesInUse(*store_));
  Usage u;
  std::set<Digest> counted_blobs, counted_layers;
  for (const CacheRecord& r : List()) {
    Held h = RecordHolds(*store_, r);
    ++u.records;
    if (used.HasPrefix(h.all_diff_ids)) ++u.active;
    std::erase_if(h.blobs, [&](const Digest& d) { return !counted_blobs.insert(d).second; });
    std::erase_if(h.diff_ids, [&](const Digest& d) { return !counted_layers.insert(d).second; });
    u.size += HeldBytes(*store_, h, used);
  }
  u.reclaimable = u.size;
  return u;
}

Result<BuildCache::PruneReport> BuildCache::Prune(bool all) const {
  ASSIGN_OR_RETURN(StoreLock lock, store_->LockExclusive());
  ASSIGN_OR_RETURN(InUse used, ImagesInUse(*store_));
  PruneReport report;
  Candidates candidates;
  for (const CacheRecord& r : List()) {
    Held h = RecordHolds(*store_, r);
    if (!all && used.HasPrefix(h.all_diff_ids)) continue;
    RETURN_IF_ERROR(Remove(r.key));
    ++report.records;
    candidates.blobs.insert(candidates.blobs.end(), h.blobs.begin(), h.blobs.end());
    candidates.diff_ids.insert(candidates.diff_ids.end(), h.diff_ids.begin(), h.diff_ids.end());
    if (!h.chain.empty()) candidates.chains.push_back(h.chain);
  }
  ASSIGN_OR_RETURN(report.bytes, RemoveUnreferenced(candidates, /*locked=*/true));
  return report;
}

Result<uint64_t> BuildCache::RemoveUnreferenced(const Candidates& candidates, bool locked) const {
  StoreLock lock;
  if (!locked) {
    ASSIGN_OR_RETURN(lock, store_->LockExclusive());
  }
  ASSIGN_OR_RETURN(InUse kept, ImagesInUse(*store_));
  for (const CacheRecord& r : List()) {
    Held h = RecordHolds(*store_, r);
    kept.blobs.insert(h.blobs.begin(), h.blobs.end());
    kept.diff_ids.insert(h.diff_ids.begin(), h.diff_ids.end());
    // A record's merged index is not kept: it is a cache that the next RUN rebuilds if needed.
  }
  uint64_t bytes = 0;
  BlobStore blobs(*store_);
  for (const Digest& b : std::set<Digest>(candidates.blobs.begin(), candidates.blobs.end())) {
    if (kept.blobs.count(b) || !blobs.Has(b)) continue;
    bytes += blobs.Size(b).ok() ? *blobs.Size(b) : 0;
    RETURN_IF_ERROR(blobs.Remove(b));
  }
  LayerStore layers(*store_);
  for (const Digest& d : std::set<Digest>(candidates.diff_ids.begin(), candidates.diff_ids.end())) {
    if (kept.diff_ids.count(d) || !layers.Has(d)) continue;
    bytes += layers.DiskUsage(d).ok() ? *layers.DiskUsage(d) : 0;
    RETURN_IF_ERROR(layers.Remove(d));
  }
  for (const Digest& c : std::set<Digest>(candidates.chains.begin(), candidates.chains.end()))
    if (!kept.chains.count(c)) RETURN_IF_ERROR(RemoveTree(store_->chain_dir(c)));
  return bytes;
}

}  // namespace layerfs
