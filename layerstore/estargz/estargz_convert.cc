#include "layerstore/estargz/estargz_convert.h"

#include <archive.h>
#include <archive_entry.h>

#include <fstream>
#include <functional>
#include <memory>
#include <set>

#include "layerstore/estargz/estargz_toc.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"

namespace layerfs {

namespace {

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_read_free)>;

Result<ArchivePtr> OpenLayer(const fs::path& blob) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), blob.c_str(), 1 << 16) != ARCHIVE_OK)
    return Status::Error(EIO, "open layer " + blob.string() + ": " + archive_error_string(a.get()));
  return a;
}

// Calls each(in, entry) for every entry of the layer but the eStargz metadata of an earlier
// conversion (its TOC and landmarks), which the new blob writes afresh.
Status ForEachEntry(const fs::path& blob, const std::function<Status(archive*, archive_entry*)>& each) {
  ASSIGN_OR_RETURN(ArchivePtr a, OpenLayer(blob));
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) return Status::Ok();
    if (rc < ARCHIVE_WARN) return Status::Error(EIO, "read layer " + blob.string() + ": " + archive_error_string(a.get()));
    std::string name = CleanName(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
    if (name == kEstargzTocName || name == kEstargzPrefetchLandmark || name == kEstargzNoPrefetchLandmark) continue;
    RETURN_IF_ERROR(each(a.get(), e));
  }
}

bool IsPlainFile(archive_entry* e) {
  return archive_entry_filetype(e) == AE_IFREG && archive_entry_hardlink(e) == nullptr;
}

// The prioritized entries of a layer: the listed regular files it holds and the directories
// above them.
Result<std::set<std::string>> Prioritized(const fs::path& blob, const std::set<std::string>& wanted) {
  std::set<std::string> files;
  RETURN_IF_ERROR(ForEachEntry(blob, [&](archive*, archive_entry* e) {
    std::string name = CleanName(archive_entry_pathname(e));
    if (IsPlainFile(e) && wanted.contains(name)) files.insert(name);
    return Status::Ok();
  }));
  std::set<std::string> out = files;
  for (const std::string& f : files)
    for (size_t slash = f.find('/'); slash != std::string::npos; slash = f.find('/', slash + 1)) out.insert(f.substr(0, slash));
  return out;
}

bool InSet(archive_entry* e, const std::set<std::string>& set) {
  std::string name = CleanName(archive_entry_pathname(e));
  return set.contains(name) && (archive_entry_filetype(e) == AE_IFDIR || IsPlainFile(e));
}

Result<Descriptor> PutJson(const Store& store, const std::string& media_type, const std::string& bytes) {
  ASSIGN_OR_RETURN(Digest d, BlobStore(store).PutBytes(bytes));
  return Descriptor{media_type, d, bytes.size(), nlohmann::json(), nlohmann::json()};
}

}  // namespace

Result<std::vector<std::string>> ReadPrefetchList(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return Status::FromErrno("read prefetch list " + file.string());
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

Result<EstargzBlob> ConvertLayerToEstargz(const Store& store, const Descriptor& layer, const EstargzOptions& options) {
  const fs::path blob = BlobStore(store).Path(layer.digest);
  std::set<std::string> wanted;
  for (const std::string& p : options.prefetch) wanted.insert(CleanName(p));
  std::set<std::string> first;
  if (!wanted.empty()) {
    ASSIGN_OR_RETURN(first, Prioritized(blob, wanted));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<EstargzWriter> w, EstargzWriter::Create(store, options.chunk_size));
  if (first.empty()) {
    RETURN_IF_ERROR(w->AddLandmark(false));
  } else {
    RETURN_IF_ERROR(ForEachEntry(blob, [&](archive* in, archive_entry* e) {
      return InSet(e, first) ? w->AddArchiveEntry(in, e) : Status::Ok();
    }));
    RETURN_IF_ERROR(w->AddLandmark(true));
  }
  RETURN_IF_ERROR(ForEachEntry(blob, [&](archive* in, archive_entry* e) {
    return InSet(e, first) ? Status::Ok() : w->AddArchiveEntry(in, e);
  }));
  auto out = w->Finish(kOciLayerGzipType);
  if (!out.ok()) return out.status().WithContext("eStargz layer " + layer.digest.str());
  return out;
}

Result<Image> ConvertImageToEstargz(const Store& store, const Image& image, const EstargzOptions& options,
                                    const TransferCallback& progress) {
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json diff_ids = nlohmann::json::array();
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& l = image.layers[i];
    if (l.annotations.is_object() && l.annotations.contains(kEstargzTocDigestAnnotation)) {
      layers.push_back(DescriptorJson(l));
      diff_ids.push_back(image.diff_ids.at(i).str());
      continue;
    }
    const std::string id = image.diff_ids.at(i).short_id();
    if (progress) progress({id, "Converting to eStargz", 0, 0, false});
    ASSIGN_OR_RETURN(EstargzBlob converted, ConvertLayerToEstargz(store, l, options));
    if (progress) progress({id, "Converted", 0, 0, false});
    layers.push_back(DescriptorJson(converted.blob));
    diff_ids.push_back(converted.diff_id.str());
  }
  nlohmann::json config = image.config;
  config["rootfs"] = {{"type", "layers"}, {"diff_ids", diff_ids}};
  ASSIGN_OR_RETURN(Descriptor config_desc, PutJson(store, kOciConfigType, config.dump()));
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", kOciManifestType},
                             {"config", DescriptorJson(config_desc)},
                             {"layers", layers}};
  ASSIGN_OR_RETURN(Descriptor manifest_desc, PutJson(store, kOciManifestType, manifest.dump()));
  return ImageStore(store).LoadImage(manifest_desc);
}

}  // namespace layerfs
