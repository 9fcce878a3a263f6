#include "layerstore/store/image_gc.h"

#include <algorithm>
#include <set>

#include "layerstore/base/remove_tree.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/disk_usage.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_holds.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

using Records = std::vector<ImageStore::Record>;

// What a set of images refers to.
struct Refs {
  std::set<Digest> blobs;
  std::set<Digest> layers;
  std::set<Digest> chains;  // every prefix of every image's layer chain

  void Add(const Image& image) {
    for (const auto& b : image.blobs()) blobs.insert(b);
    std::vector<Digest> prefix;
    for (const auto& d : image.diff_ids) {
      layers.insert(d);
      prefix.push_back(d);
      chains.insert(ChainId(prefix));
    }
  }
};

Result<Image> Load(const Store& store, const Digest& manifest) {
  return ImageStore(store).LoadImage({kOciManifestType, manifest, 0, nlohmann::json(), nlohmann::json()});
}

// Everything still referenced by the records, by containers' images and by holders.
Result<Refs> LiveRefs(const Store& store, const Records& records) {
  Refs live;
  std::set<Digest> manifests;
  for (const auto& r : records) manifests.insert(r.manifest.digest);
  for (const auto& c : ContainerStore(store).List())
    if (!c.manifest_digest.empty() && BlobStore(store).Has(c.manifest_digest)) manifests.insert(c.manifest_digest);
  for (const auto& m : manifests) {
    ASSIGN_OR_RETURN(Image image, Load(store, m));
    live.Add(image);
  }
  ASSIGN_OR_RETURN(HeldLayers held, LayerHolds(store).All());
  live.layers.insert(held.diff_ids.begin(), held.diff_ids.end());
  live.chains.insert(held.chains.begin(), held.chains.end());
  return live;
}

Status RemoveChain(const Store& store, const Digest& chain) {
  fs::path tmp = store.NewTempPath("rm-chain");
  if (::rename(store.chain_dir(chain).c_str(), tmp.c_str()) != 0)
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("remove chain " + chain.str());
  return RemoveTree(tmp);
}

// Rewrites index.json without the deleted manifests, then deletes what only they used.
Status Delete(const Store& store, Records records, const std::set<Digest>& manifests, RemovalReport* report) {
  Refs dead;
  for (const auto& m : manifests) {
    ASSIGN_OR_RETURN(Image image, Load(store, m));
    dead.Add(image);
    report->deleted_images.push_back(image.id());
  }
  std::erase_if(records, [&](const ImageStore::Record& r) { return manifests.count(r.manifest.digest) > 0; });
  RETURN_IF_ERROR(ImageStore(store).WriteRecords(records));
  ASSIGN_OR_RETURN(Refs live, LiveRefs(store, records));
  BlobStore blobs(store);
  for (const auto& b : dead.blobs)
    if (!live.blobs.count(b)) RETURN_IF_ERROR(blobs.Remove(b));
  LayerStore layers(store);
  LayerSizes sizes(store);
  for (const auto& d : dead.layers) {
    if (live.layers.count(d) || !layers.Has(d)) continue;
    auto size = sizes.Get(d);
    RETURN_IF_ERROR(layers.Remove(d));
    report->reclaimed += size.ok() ? *size : 0;
    report->deleted_layers.push_back(d);
  }
  for (const auto& c : dead.chains)
    if (!live.chains.count(c)) RETURN_IF_ERROR(RemoveChain(store, c));
  return Status::Ok();
}

std::vector<ContainerRecord> UsersOf(const Store& store, const Image& image) {
  std::vector<ContainerRecord> out;
  for (auto& c : ContainerStore(store).List())
    if (c.image_id == image.id() || c.manifest_digest == image.manifest_digest) out.push_back(std::move(c));
  return out;
}

std::vector<std::string> TagsOf(const Records& records, const Digest& manifest) {
  std::vector<std::string> out;
  for (const auto& r : records)
    if (r.manifest.digest == manifest && !r.ref.empty()) out.push_back(r.ref);
  return out;
}

// The tag the user named, when they named one (not an ID, not name@digest).
std::string NamedTag(std::string_view ref_or_id, const std::vector<std::string>& tags) {
  auto ref = ParseReference(ref_or_id);
  if (!ref.ok() || !ref->digest.empty()) return "";
  return std::find(tags.begin(), tags.end(), ref->String()) != tags.end() ? ref->String() : "";
}

void Untag(Records* records, const Digest& manifest, const std::string& tag) {
  for (auto& r : *records)
    if (r.manifest.digest == manifest && r.ref == tag) r.ref.clear();
  // Keep exactly one record: the image stays known, dangling or under its other tags.
  ImageStore::Record keep = *std::find_if(records->begin(), records->end(),
                                          [&](const ImageStore::Record& r) { return r.manifest.digest == manifest; });
  ImageStore::PutRecord(records, keep.manifest, "");
}

std::string Short(const Digest& d) { return d.short_id(); }

}  // namespace

Result<RemovalReport> RemoveImage(const Store& store, std::string_view ref_or_id, bool force) {
  ASSIGN_OR_RETURN(StoreLock lock, store.LockExclusive());
  ImageStore images(store);
  ASSIGN_OR_RETURN(Image image, images.Resolve(ref_or_id));
  ASSIGN_OR_RETURN(Records records, images.ReadRecords());
  std::vector<std::string> tags = TagsOf(records, image.manifest_digest);
  std::string tag = NamedTag(ref_or_id, tags);
  std::vector<ContainerRecord> users = UsersOf(store, image);
  RemovalReport report;
  if (!tag.empty() && tags.size() > 1) {  // one of several tags: untag only
    Untag(&records, image.manifest_digest, tag);
    report.untagged.push_back(tag);
    RETURN_IF_ERROR(images.WriteRecords(records));
    return report;
  }
  if (!users.empty() && !force) {
    std::string c = users[0].id.substr(0, 12);
    if (!tag.empty())
      return Status::Error(EBUSY, "conflict: unable to remove repository reference \"" + FamiliarString(tag) +
                                      "\" (must force) - container " + c + " is using its referenced image " + Short(image.id()));
    return Status::Error(EBUSY, "conflict: unable to delete " + Short(image.id()) + " (must be forced) - image is being used by container " + c);
  }
  if (tag.empty() && tags.size() > 1 && !force)
    return Status::Error(EBUSY, "conflict: unable to delete " + Short(image.id()) +
                                    " (must be forced) - image is referenced in multiple repositories");
  for (const auto& t : tags) {
    Untag(&records, image.manifest_digest, t);
    report.untagged.push_back(t);
  }
  if (!users.empty()) {  // forced while in use: keep it, dangling
    RETURN_IF_ERROR(images.WriteRecords(records));
    return report;
  }
  RETURN_IF_ERROR(Delete(store, std::move(records), {image.manifest_digest}, &report));
  return report;
}

Result<RemovalReport> PruneImages(const Store& store, bool all) {
  ASSIGN_OR_RETURN(StoreLock lock, store.LockExclusive());
  ImageStore images(store);
  ASSIGN_OR_RETURN(Records records, images.ReadRecords());
  ASSIGN_OR_RETURN(std::vector<Image> list, images.List());
  RemovalReport report;
  std::set<Digest> doomed;
  for (const auto& image : list) {
    if (!UsersOf(store, image).empty() || (!all && !image.tags.empty())) continue;
    doomed.insert(image.manifest_digest);
    for (const auto& t : image.tags) report.untagged.push_back(t);
  }
  if (doomed.empty()) return report;
  RETURN_IF_ERROR(Delete(store, std::move(records), doomed, &report));
  return report;
}

}  // namespace layerfs
