#include "layerstore/store/image_store.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <map>
#include <utility>

#include "layerstore/oci/oci_conversion.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/blob_store.h"

namespace layerfs {

namespace {

constexpr const char* kRefNameKey = "org.opencontainers.image.ref.name";

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json EmptyConfig() {
  return {{"architecture", "amd64"},
          {"os", "linux"},
          {"config", nlohmann::json::object()},
          {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}},
          {"history", nlohmann::json::array()}};
}

nlohmann::json HistoryJson(const HistoryEntry& h) {
  nlohmann::json j = {{"created", h.created}, {"created_by", h.created_by}};
  if (!h.author.empty()) j["author"] = h.author;
  if (!h.comment.empty()) j["comment"] = h.comment;
  if (h.empty_layer) j["empty_layer"] = true;
  return j;
}

nlohmann::json ChildConfig(const Image* base, const ImageStore::ChildSpec& spec) {
  nlohmann::json config = base ? base->config : EmptyConfig();
  if (!config["rootfs"].is_object()) config["rootfs"] = {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}};
  if (!config["history"].is_array()) config["history"] = nlohmann::json::array();
  HistoryEntry h = spec.history;
  if (h.created.empty()) h.created = NowRfc3339();
  h.empty_layer = spec.layer.digest.empty();
  if (!h.empty_layer) config["rootfs"]["diff_ids"].push_back(spec.diff_id.str());
  config["history"].push_back(HistoryJson(h));
  config["created"] = h.created;
  if (spec.config_changes.is_object()) {
    if (!config["config"].is_object()) config["config"] = nlohmann::json::object();
    config["config"].update(spec.config_changes);
  }
  return config;
}

nlohmann::json ChildManifest(const Image* base, const ImageStore::ChildSpec& spec, const Descriptor& config) {
  nlohmann::json layers = nlohmann::json::array();
  if (base) {
    for (Descriptor l : base->layers) {
      l.media_type = OciMediaType(l.media_type);
      layers.push_back(DescriptorJson(l));
    }
  }
  if (!spec.layer.digest.empty()) layers.push_back(DescriptorJson(spec.layer));
  return {{"schemaVersion", 2}, {"mediaType", kOciManifestType}, {"config", DescriptorJson(config)}, {"layers", layers}};
}

}  // namespace

Result<std::string> ImageStore::NormalizeRef(std::string_view ref) {
  ASSIGN_OR_RETURN(Reference r, ParseReference(ref));
  return r.String();
}

Result<std::vector<ImageStore::Record>> ImageStore::ReadRecords() const {
  std::string what = store_->index_json_path().string();
  std::string bytes;
  {
    std::ifstream in(store_->index_json_path(), std::ios::binary);
    if (!in) return Status::FromErrno("read " + what);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, what));
  std::vector<Record> out;
  auto manifests = doc.find("manifests");
  if (manifests == doc.end() || !manifests->is_array()) return out;
  for (const auto& m : *manifests) {
    ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m, what));
    std::string ref;
    if (d.annotations.is_object()) {
      auto it = d.annotations.find(kRefNameKey);
      if (it != d.annotations.end() && it->is_string()) ref = it->get<std::string>();
    }
    out.push_back({std::move(d), std::move(ref)});
  }
  return out;
}

Status ImageStore::WriteRecords(const std::vector<Record>& records) const {
  nlohmann::json manifests = nlohmann::json::array();
  for (const auto& r : records) {
    Descriptor d = r.manifest;
    d.annotations = nlohmann::json();
    d.platform = nlohmann::json();
    if (!r.ref.empty()) d.annotations = {{kRefNameKey, r.ref}};
    manifests.push_back(DescriptorJson(d));
  }
  nlohmann::json doc = {{"schemaVersion", 2}, {"mediaType", kOciIndexType}, {"manifests", manifests}};
  return WriteFileAtomic(*store_, store_->index_json_path(), doc.dump());
}

void ImageStore::PutRecord(std::vector<Record>* records, const Descriptor& manifest, const std::string& ref) {
  if (!ref.empty()) {
    for (auto& r : *records)
      if (r.ref == ref) r.ref.clear();  // the tag moves; its old image stays, dangling
  }
  records->push_back({manifest, ref});
  // One record per tag; an image keeps a ref-less record only while it has no tag at all.
  std::map<Digest, bool> tagged;
  for (const auto& r : *records) tagged[r.manifest.digest] |= !r.ref.empty();
  std::map<Digest, bool> kept_dangling;
  std::erase_if(*records, [&](const Record& r) {
    if (!r.ref.empty()) return false;
    if (tagged[r.manifest.digest]) return true;
    return std::exchange(kept_dangling[r.manifest.digest], true);
  });
}

Result<Image> ImageStore::LoadImage(const Descriptor& manifest) const {
  BlobStore blobs(*store_);
  std::string what = "manifest " + manifest.digest.str();
  auto bytes = blobs.ReadAll(manifest.digest);
  if (!bytes.ok()) return bytes.status();
  Image image;
  image.manifest_digest = manifest.digest;
  image.manifest_size = bytes->size();
  RETURN_IF_ERROR(ParseManifest(*bytes, what, &image));
  // An OCI manifest copied out of another store may name a Docker manifest this one lacks: then
  // it is simply an OCI image.
  if (!image.source_manifest.digest.empty()) {
    std::error_code ec;
    image.source_manifest.size = fs::file_size(blobs.Path(image.source_manifest.digest), ec);
    if (ec) image.source_manifest = Descriptor();
  }
  auto config = blobs.ReadAll(image.config_descriptor.digest);
  if (!config.ok()) return config.status();
  RETURN_IF_ERROR(ParseConfig(*config, "config " + image.config_descriptor.digest.str(), &image));
  return image;
}

Result<std::vector<Image>> ImageStore::List() const {
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords());
  std::vector<Image> out;
  std::map<Digest, size_t> by_manifest;
  for (const auto& r : records) {
    auto it = by_manifest.find(r.manifest.digest);
    if (it == by_manifest.end()) {
      ASSIGN_OR_RETURN(Image image, LoadImage(r.manifest));
      it = by_manifest.emplace(r.manifest.digest, out.size()).first;
      out.push_back(std::move(image));
    }
    if (!r.ref.empty()) out[it->second].tags.push_back(r.ref);
  }
  return out;
}

Result<Image> ImageStore::Resolve(std::string_view ref_or_id) const {
  ASSIGN_OR_RETURN(std::vector<Image> images, List());
  std::string_view id = ref_or_id;
  bool id_only = id.rfind("sha256:", 0) == 0;
  if (id_only) id.remove_prefix(7);
  if (!id_only) {
    auto ref = ParseReference(ref_or_id);
    if (ref.ok()) {
      for (auto& image : images) {
        if (!ref->digest.empty()) {
          if (image.manifest_digest.str() == ref->digest || image.repo_digest().str() == ref->digest)
            return std::move(image);
          continue;
        }
        if (std::find(image.tags.begin(), image.tags.end(), ref->String()) != image.tags.end())
          return std::move(image);
      }
    } else if (!IsHex(id)) {
      return ref.status();
    }
  }
  if (IsHex(id)) {
    const Image* found = nullptr;
    for (const auto& image : images) {
      if (image.id().hex().rfind(id, 0) != 0) continue;
      if (found && found->id() != image.id())
        return Status::Error(EINVAL, "ambiguous image ID prefix \"" + std::string(ref_or_id) + "\": it matches several images");
      if (!found || found->tags.empty()) found = &image;
    }
    if (found) return *found;
  }
  return Status::Error(ENOENT, "no such image: " + std::string(ref_or_id));
}

Status ImageStore::Add(const Digest& manifest_digest, std::string_view ref) {
  std::string normalized;
  if (!ref.empty()) {
    ASSIGN_OR_RETURN(normalized, NormalizeRef(ref));
  }
  ASSIGN_OR_RETURN(Descriptor d, OciDescriptor(manifest_digest));
  ASSIGN_OR_RETURN(StoreLock lock, store_->LockExclusive());
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords());
  PutRecord(&records, d, normalized);
  return WriteRecords(records);
}

Result<Descriptor> ImageStore::OciDescriptor(const Digest& manifest_digest) const {
  BlobStore blobs(*store_);
  std::string what = "manifest " + manifest_digest.str();
  ASSIGN_OR_RETURN(std::string bytes, blobs.ReadAll(manifest_digest));
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, what));
  std::string type = DocumentMediaType(doc);
  if (type != kDockerManifestType) return Descriptor{type, manifest_digest, bytes.size(), nlohmann::json(), nlohmann::json()};
  ASSIGN_OR_RETURN(std::string oci, OciManifestFromDocker(bytes, manifest_digest, what));
  ASSIGN_OR_RETURN(Digest oci_digest, blobs.PutBytes(oci));
  return Descriptor{kOciManifestType, oci_digest, oci.size(), nlohmann::json(), nlohmann::json()};
}

Result<size_t> ImageStore::ConvertDockerRecords() const {
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords());
  size_t converted = 0;
  for (auto& r : records) {
    if (r.manifest.media_type == kOciManifestType) continue;
    ASSIGN_OR_RETURN(Descriptor d, OciDescriptor(r.manifest.digest));
    if (d.digest == r.manifest.digest) continue;
    r.manifest = d;
    ++converted;
  }
  if (converted > 0) RETURN_IF_ERROR(WriteRecords(records));
  return converted;
}

Status ImageStore::Tag(std::string_view source, std::string_view target_ref) {
  ASSIGN_OR_RETURN(std::string normalized, NormalizeRef(target_ref));
  ASSIGN_OR_RETURN(Image image, Resolve(source));
  Descriptor d{image.manifest_media_type, image.manifest_digest, image.manifest_size, nlohmann::json(), nlohmann::json()};
  ASSIGN_OR_RETURN(StoreLock lock, store_->LockExclusive());
  ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords());
  PutRecord(&records, d, normalized);
  return WriteRecords(records);
}

Result<Image> ImageStore::CreateChild(const Image* base, const ChildSpec& spec, std::string_view ref) const {
  std::string normalized;
  if (!ref.empty()) {
    ASSIGN_OR_RETURN(normalized, NormalizeRef(ref));
  }
  BlobStore blobs(*store_);
  std::string config_bytes = ChildConfig(base, spec).dump();
  ASSIGN_OR_RETURN(Digest config_digest, blobs.PutBytes(config_bytes));
  Descriptor config{kOciConfigType, config_digest, config_bytes.size(), nlohmann::json(), nlohmann::json()};
  std::string manifest_bytes = ChildManifest(base, spec, config).dump();
  ASSIGN_OR_RETURN(Digest manifest_digest, blobs.PutBytes(manifest_bytes));
  Descriptor manifest{kOciManifestType, manifest_digest, manifest_bytes.size(), nlohmann::json(), nlohmann::json()};
  {
    ASSIGN_OR_RETURN(StoreLock lock, store_->LockExclusive());
    ASSIGN_OR_RETURN(std::vector<Record> records, ReadRecords());
    PutRecord(&records, manifest, normalized);
    RETURN_IF_ERROR(WriteRecords(records));
  }
  ASSIGN_OR_RETURN(Image image, LoadImage(manifest));
  if (!normalized.empty()) image.tags.push_back(normalized);
  return image;
}

}  // namespace layerfs
