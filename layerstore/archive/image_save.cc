#include "layerstore/archive/image_save.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "layerstore/base/unique_fd.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"

namespace layerfs {

namespace {

using Json = nlohmann::json;

// One image to save and the names it is saved under (normalized; empty: untagged).
struct Entry {
  Image image;
  std::vector<std::string> refs;
};

Result<std::vector<Entry>> Collect(const Store& store, const std::vector<std::string>& names) {
  ImageStore images(store);
  std::vector<Entry> out;
  for (const auto& name : names) {
    ASSIGN_OR_RETURN(Image image, images.Resolve(name));
    auto ref = ParseReference(name);
    std::string tag = ref.ok() && ref->digest.empty() &&
                              std::find(image.tags.begin(), image.tags.end(), ref->String()) != image.tags.end()
                          ? ref->String()
                          : "";
    auto it = std::find_if(out.begin(), out.end(), [&](const Entry& e) { return e.image.manifest_digest == image.manifest_digest; });
    if (it == out.end()) it = out.insert(out.end(), Entry{std::move(image), {}});
    if (!tag.empty() && std::find(it->refs.begin(), it->refs.end(), tag) == it->refs.end()) it->refs.push_back(tag);
  }
  return out;
}

class TarOut {
 public:
  explicit TarOut(const fs::path& file) : a_(archive_write_new(), archive_write_free), file_(file) {
    archive_write_set_format_pax_restricted(a_.get());
    archive_write_set_bytes_in_last_block(a_.get(), 1);
  }
  Status Open() {
    if (archive_write_open_filename(a_.get(), file_.c_str()) != ARCHIVE_OK) return Error();
    return Status::Ok();
  }
  Status AddBytes(const std::string& name, const std::string& bytes) {
    RETURN_IF_ERROR(Header(name, bytes.size()));
    if (!bytes.empty() && archive_write_data(a_.get(), bytes.data(), bytes.size()) < 0) return Error();
    return Status::Ok();
  }
  Status AddFile(const std::string& name, const fs::path& src) {
    UniqueFd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st;
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return Status::FromErrno(src.string());
    RETURN_IF_ERROR(Header(name, static_cast<uint64_t>(st.st_size)));
    std::string buf(1 << 20, '\0');
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(src.string());
      if (n == 0) return Status::Ok();
      if (archive_write_data(a_.get(), buf.data(), static_cast<size_t>(n)) < 0) return Error();
    }
  }
  Status AddDir(const std::string& name) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), 0755);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return Error();
    return Status::Ok();
  }
  Status Close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return Error();
    return Status::Ok();
  }

 private:
  Status Header(const std::string& name, uint64_t size) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return Error();
    return Status::Ok();
  }
  Status Error() {
    const char* msg = archive_error_string(a_.get());
    return Status::Error(EIO, "write " + file_.string() + ": " + (msg ? msg : "archive error"));
  }
  std::unique_ptr<archive, decltype(&archive_write_free)> a_;
  fs::path file_;
};

std::string TagOnly(const std::string& ref) {
  auto r = ParseReference(ref);
  return r.ok() ? r->tag : ref;
}

Json IndexJson(const std::vector<Entry>& entries, SaveFormat format) {
  Json manifests = Json::array();
  for (const auto& e : entries) {
    Json d = {{"mediaType", e.image.manifest_media_type}, {"digest", e.image.manifest_digest.str()}, {"size", e.image.manifest_size}};
    if (e.refs.empty()) manifests.push_back(d);
    for (const auto& ref : e.refs) {
      std::string name = format == SaveFormat::kDockerArchive ? TagOnly(ref) : ref;
      d["annotations"] = {{"io.containerd.image.name", ref}, {"org.opencontainers.image.ref.name", name}};
      manifests.push_back(d);
    }
  }
  return {{"schemaVersion", 2}, {"mediaType", kOciIndexType}, {"manifests", manifests}};
}

std::string BlobPath(const Digest& d) { return "blobs/sha256/" + d.hex(); }

// manifest.json and repositories of a docker save.
std::pair<Json, Json> DockerManifest(const std::vector<Entry>& entries) {
  Json manifest = Json::array();
  Json repositories = Json::object();
  for (const auto& e : entries) {
    Json layers = Json::array();
    for (const auto& l : e.image.layers) layers.push_back(BlobPath(l.digest));
    Json tags = Json::array();
    for (const auto& ref : e.refs) {
      auto r = ParseReference(ref);
      tags.push_back(FamiliarString(ref));
      if (r.ok() && !e.image.layers.empty()) repositories[r->FamiliarName()][r->tag] = e.image.layers.back().digest.hex();
    }
    manifest.push_back({{"Config", BlobPath(e.image.id())}, {"RepoTags", e.refs.empty() ? Json() : tags}, {"Layers", layers}});
  }
  return {manifest, repositories};
}

Status WriteArchive(const Store& store, const std::vector<Entry>& entries, TarOut* tar, SaveFormat format) {
  BlobStore blobs(store);
  RETURN_IF_ERROR(tar->AddDir("blobs/"));
  RETURN_IF_ERROR(tar->AddDir("blobs/sha256/"));
  std::set<Digest> written;
  for (const auto& e : entries) {
    // blobs() includes a kept Docker manifest, so loading the archive keeps the registry digest.
    for (const auto& d : e.image.blobs()) {
      if (!written.insert(d).second) continue;
      if (!blobs.Has(d)) return Status::Error(ENOENT, "blob " + d.str() + " of image " + e.image.id().str() + " is missing from the store");
      RETURN_IF_ERROR(tar->AddFile(BlobPath(d), blobs.Path(d)));
    }
  }
  RETURN_IF_ERROR(tar->AddBytes("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  RETURN_IF_ERROR(tar->AddBytes("index.json", IndexJson(entries, format).dump()));
  if (format == SaveFormat::kDockerArchive) {
    auto [manifest, repositories] = DockerManifest(entries);
    RETURN_IF_ERROR(tar->AddBytes("manifest.json", manifest.dump()));
    RETURN_IF_ERROR(tar->AddBytes("repositories", repositories.dump()));
  }
  return tar->Close();
}

}  // namespace

Result<SaveFormat> ParseSaveFormat(std::string_view name) {
  if (name == "docker-archive" || name.empty()) return SaveFormat::kDockerArchive;
  if (name == "oci-archive") return SaveFormat::kOciArchive;
  return Status::Error(EINVAL, "unknown archive format \"" + std::string(name) + "\" (docker-archive or oci-archive)");
}

Status SaveImages(const Store& store, const std::vector<std::string>& names, const fs::path& output, SaveFormat format,
                  const EstargzOptions* estargz) {
  if (names.empty()) return Status::Error(EINVAL, "save: no image given");
  ASSIGN_OR_RETURN(std::vector<Entry> entries, Collect(store, names));
  StoreLock lock;  // the conversions' blobs belong to no image: no GC until they are written
  if (estargz != nullptr) {
    ASSIGN_OR_RETURN(lock, store.LockShared());
    for (Entry& e : entries) {
      ASSIGN_OR_RETURN(e.image, ConvertImageToEstargz(store, e.image, *estargz, {}));
    }
  }
  fs::path tmp = output;
  tmp += ".layerfs-tmp-" + std::to_string(::getpid());
  TarOut tar(tmp);
  Status st = tar.Open();
  if (st.ok()) st = WriteArchive(store, entries, &tar, format);
  if (st.ok() && ::rename(tmp.c_str(), output.c_str()) != 0) st = Status::FromErrno("write " + output.string());
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace layerfs
