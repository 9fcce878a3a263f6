#include "layerstore/archive/image_load.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include <tbb/parallel_for_each.h>

#include "layerstore/base/failpoint.h"
#include "layerstore/base/remove_tree.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/layer/layer_unpack.h"
#include "layerstore/oci/oci_conversion.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/store_gc.h"

namespace layerfs {

namespace {

// A file of the input: staged (archive entries, already hashed) or in place (a directory).
struct SourceFile {
  fs::path path;
  Digest digest;  // known for staged files
  uint64_t size = 0;
};

Status WriteAllFd(int fd, const void* data, size_t len, const std::string& what) {
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(what);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ReadWhole(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::FromErrno("read " + file.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// "./a//b" -> "a/b"; empty for names that climb out ("..").
std::string CleanPath(std::string_view name) {
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view comp = name.substr(i, j - i);
    if (comp == "..") return "";
    if (!comp.empty() && comp != ".") out += (out.empty() ? "" : "/") + std::string(comp);
    i = j + 1;
  }
  return out;
}

// The input's files by relative path. Tar inputs are streamed once into `staging`, hashing
// every regular file on the way; symlinks and hard links between entries are followed.
class Source {
 public:
  static Result<Source> Open(const fs::path& input, const fs::path& staging);
  bool Has(const std::string& rel) const { return Get(rel).has_value(); }
  std::optional<SourceFile> Get(const std::string& rel) const;
  bool is_dir() const { return is_dir_; }

 private:
  std::optional<std::string> Resolve(std::string rel) const;
  Status ReadTar(const fs::path& input, const fs::path& staging);
  Status StageEntry(archive* a, const std::string& name, const fs::path& dest);

  bool is_dir_ = false;
  fs::path dir_;
  std::map<std::string, SourceFile> files_;
  std::map<std::string, std::string> links_;  // entry -> target entry (cleaned)
};

Result<Source> Source::Open(const fs::path& input, const fs::path& staging) {
  Source s;
  std::error_code ec;
  auto status = fs::status(input, ec);
  if (ec || !fs::exists(status)) return Status::Error(ENOENT, input.string() + ": no such file or directory");
  if (fs::is_directory(status)) {
    s.is_dir_ = true;
    s.dir_ = input;
    return s;
  }
  RETURN_IF_ERROR(s.ReadTar(input, staging));
  return s;
}

Status Source::StageEntry(archive* a, const std::string& name, const fs::path& dest) {
  UniqueFd fd(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno("stage " + dest.string());
  Sha256 hash;
  uint64_t size = 0;
  const void* buf;
  size_t len;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &len, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return Status::Error(EINVAL, name + ": " + archive_error_string(a));
    hash.Update(buf, len);
    size += len;
    RETURN_IF_ERROR(WriteAllFd(fd.get(), buf, len, "stage " + dest.string()));
  }
  files_[name] = {dest, hash.Finish(), size};
  return Status::Ok();
}

Status Source::ReadTar(const fs::path& input, const fs::path& staging) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  std::string what = input.string();
  if (archive_read_open_filename(a.get(), input.c_str(), 1 << 20) != ARCHIVE_OK)
    return Status::Error(EINVAL, what + ": not a docker-archive, oci-archive or OCI layout (" +
                                     archive_error_string(a.get()) + ")");
  archive_entry* entry;
  size_t n = 0;
  for (;;) {
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      std::string msg = archive_error_string(a.get()) ? archive_error_string(a.get()) : "read error";
      return Status::Error(EINVAL, what + (n == 0 ? ": not a docker-archive, oci-archive or OCI layout (" + msg + ")"
                                                  : ": truncated or corrupt archive (" + msg + ")"));
    }
    ++n;
    // libarchive has no name (or no symlink target) for some crafted headers: a corrupt archive.
    const char* raw_name = archive_entry_pathname(entry);
    const char* symlink = archive_entry_symlink(entry);
    bool is_symlink = archive_entry_filetype(entry) == AE_IFLNK;
    if (raw_name == nullptr || (is_symlink && symlink == nullptr))
      return Status::Error(EINVAL, what + ": corrupt archive (entry " + std::to_string(n) + " has no name)");
    std::string name = CleanPath(raw_name);
    if (name.empty()) continue;
    if (const char* hard = archive_entry_hardlink(entry)) {
      links_[name] = CleanPath(hard);
    } else if (is_symlink) {
      std::string parent = fs::path(name).parent_path().string();
      links_[name] = CleanPath(parent + "/" + symlink);
    } else if (archive_entry_filetype(entry) == AE_IFREG) {
      Status st = StageEntry(a.get(), name, staging / ("entry-" + std::to_string(n)));
      if (!st.ok()) return st.WithContext(what);
    }
  }
  return Status::Ok();
}

std::optional<std::string> Source::Resolve(std::string rel) const {
  for (int hops = 0; hops < 16; ++hops) {
    if (files_.count(rel)) return rel;
    auto link = links_.find(rel);
    if (link == links_.end()) return std::nullopt;
    rel = link->second;
  }
  return std::nullopt;
}

std::optional<SourceFile> Source::Get(const std::string& rel) const {
  if (is_dir_) {
    std::string clean = CleanPath(rel);
    std::error_code ec;
    fs::path p = dir_ / clean;
    if (clean.empty() || !fs::is_regular_file(p, ec)) return std::nullopt;
    return SourceFile{p, Digest(), fs::file_size(p, ec)};
  }
  auto name = Resolve(CleanPath(rel));
  if (!name) return std::nullopt;
  return files_.at(*name);
}

// What one image of the input consists of before verification.
struct Candidate {
  Descriptor manifest;
  std::string synthesized;               // docker-archive old layout: the manifest we write
  std::map<Digest, std::string> rel_of;  // blob -> path in the input (default blobs/sha256/<hex>)
  std::vector<std::string> refs;         // normalized
  std::vector<std::string> names;        // names as written in the input (for only_ref)
};

std::string BlobRel(const Digest& d) { return "blobs/sha256/" + d.hex(); }

// Blobs verified and staged under staging/blobs/<hex>, shared by all images of one load.
class Stager {
 public:
  Stager(const Source& source, fs::path dir, std::string input) : source_(source), dir_(std::move(dir)), input_(std::move(input)) {}
  // Verifies the file at rel against d (digest and size) and stages it.
  Result<fs::path> Stage(const std::string& rel, const Descriptor& d, const std::string& named_by);
  // Stages a file whose digest is not known up front (docker-archive old layout).
  Result<Descriptor> StageUnknown(const std::string& rel, const std::string& named_by);
  Result<fs::path> StageBytes(const std::string& bytes, const Digest& d);
  const std::map<Digest, fs::path>& staged() const { return staged_; }

 private:
  Result<Digest> Copy(const SourceFile& f, const fs::path& dest);
  const Source& source_;
  fs::path dir_;
  std::string input_;
  std::map<Digest, fs::path> staged_;
};

Result<Digest> Stager::Copy(const SourceFile& f, const fs::path& dest) {
  UniqueFd in(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Status::FromErrno(f.path.string());
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out.valid()) return Status::FromErrno("stage " + dest.string());
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(f.path.string());
    if (n == 0) break;
    hash.Update(buf.data(), static_cast<size_t>(n));
    RETURN_IF_ERROR(WriteAllFd(out.get(), buf.data(), static_cast<size_t>(n), "stage " + dest.string()));
  }
  return hash.Finish();
}

Result<fs::path> Stager::Stage(const std::string& rel, const Descriptor& d, const std::string& named_by) {
  if (auto it = staged_.find(d.digest); it != staged_.end()) return it->second;
  auto file = source_.Get(rel);
  if (!file) return Status::Error(ENOENT, input_ + ": blob " + d.digest.str() + " named by " + named_by + " is missing");
  if (d.size != 0 && file->size != d.size)
    return Status::Error(EINVAL, input_ + ": blob " + d.digest.str() + " has " + std::to_string(file->size) +
                                     " bytes, " + named_by + " says " + std::to_string(d.size));
  fs::path dest = dir_ / d.digest.hex();
  Digest got = file->digest;
  if (source_.is_dir()) {
    ASSIGN_OR_RETURN(got, Copy(*file, dest));
  }
  if (got != d.digest) {
    std::error_code ec;
    fs::remove(dest, ec);
    return Status::Error(EINVAL, input_ + ": blob " + rel + " does not match its digest " + d.digest.str() + " (got " +
                                     got.str() + ")");
  }
  if (!source_.is_dir() && ::rename(file->path.c_str(), dest.c_str()) != 0)
    return Status::FromErrno("stage " + dest.string());
  staged_[d.digest] = dest;
  return dest;
}

Result<Descriptor> Stager::StageUnknown(const std::string& rel, const std::string& named_by) {
  auto file = source_.Get(rel);
  if (!file) return Status::Error(ENOENT, input_ + ": " + rel + " named by " + named_by + " is missing");
  Descriptor d;
  d.size = file->size;
  if (source_.is_dir()) {
    fs::path tmp = dir_ / ("unknown-" + std::to_string(staged_.size()));
    ASSIGN_OR_RETURN(d.digest, Copy(*file, tmp));
    fs::path dest = dir_ / d.digest.hex();
    if (::rename(tmp.c_str(), dest.c_str()) != 0) return Status::FromErrno("stage " + dest.string());
    staged_[d.digest] = dest;
    return d;
  }
  d.digest = file->digest;
  ASSIGN_OR_RETURN(fs::path ignored, Stage(rel, d, named_by));
  (void)ignored;
  return d;
}

Result<fs::path> Stager::StageBytes(const std::string& bytes, const Digest& d) {
  fs::path dest = dir_ / d.hex();
  std::ofstream out(dest, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) return Status::Error(EIO, "stage " + dest.string());
  staged_[d] = dest;
  return dest;
}

std::string LayerMediaType(const fs::path& blob) {
  unsigned char magic[4] = {0, 0, 0, 0};
  std::ifstream in(blob, std::ios::binary);
  in.read(reinterpret_cast<char*>(magic), 4);
  if (magic[0] == 0x1f && magic[1] == 0x8b) return kOciLayerGzipType;
  if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) return kOciLayerZstdType;
  return kOciLayerTarType;
}

void AddRef(Candidate* c, const std::string& name) {
  c->names.push_back(name);
  auto ref = ParseReference(name);
  if (ref.ok() && ref->digest.empty()) c->refs.push_back(ref->String());
}

// docker-archive, old layout: manifest.json names config and layer files; we synthesize an OCI
// manifest (deterministically, so loading the same archive twice gives the same digest), the
// form index.json keeps and Docker 25+'s own `docker save` writes.
Result<std::vector<Candidate>> DockerCandidates(const nlohmann::json& entries, Stager* stager, const std::string& input) {
  std::vector<Candidate> out;
  for (const auto& e : entries) {
    if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string() || !e.contains("Layers") || !e["Layers"].is_array())
      return Status::Error(EINVAL, input + ": manifest.json entry lacks Config or Layers");
    Candidate c;
    std::string config_rel = e["Config"].get<std::string>();
    ASSIGN_OR_RETURN(Descriptor config, stager->StageUnknown(config_rel, "manifest.json"));
    config.media_type = kOciConfigType;
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : e["Layers"]) {
      if (!l.is_string()) return Status::Error(EINVAL, input + ": manifest.json layer is not a path");
      ASSIGN_OR_RETURN(Descriptor layer, stager->StageUnknown(l.get<std::string>(), "manifest.json"));
      layer.media_type = LayerMediaType(stager->staged().at(layer.digest));
      c.rel_of[layer.digest] = l.get<std::string>();
      layers.push_back(DescriptorJson(layer));
    }
    c.rel_of[config.digest] = config_rel;
    nlohmann::json manifest = {{"schemaVersion", 2}, {"mediaType", kOciManifestType}, {"config", DescriptorJson(config)}, {"layers", layers}};
    c.synthesized = manifest.dump();
    c.manifest = {kOciManifestType, Sha256Of(c.synthesized), c.synthesized.size(), nlohmann::json(), nlohmann::json()};
    if (e.contains("RepoTags") && e["RepoTags"].is_array())
      for (const auto& t : e["RepoTags"])
        if (t.is_string()) AddRef(&c, t.get<std::string>());
    out.push_back(std::move(c));
  }
  return out;
}

// Follows an index / manifest list down to the platform's manifest.
Result<Descriptor> ResolveManifest(Descriptor d, Stager* stager, const Platform& platform, const std::string& input) {
  for (int depth = 0; depth < 4; ++depth) {
    if (!IsIndexMediaType(d.media_type) && !d.media_type.empty()) return d;
    ASSIGN_OR_RETURN(fs::path file, stager->Stage(BlobRel(d.digest), d, "index.json"));
    ASSIGN_OR_RETURN(std::string bytes, ReadWhole(file));
    ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, input + ": " + d.digest.str()));
    std::string type = DocumentMediaType(doc);
    if (!IsIndexMediaType(type)) {
      d.media_type = type;
      return d;
    }
    nlohmann::json annotations = d.annotations;
    ASSIGN_OR_RETURN(d, SelectPlatformManifest(doc, platform, input + ": index " + d.digest.str()));
    d.annotations = annotations;
  }
  return Status::Error(EINVAL, input + ": image indexes nested too deeply");
}

// Tags of an OCI layout entry: containerd's full name, else ref.name when it is a name.
void OciRefs(const nlohmann::json& annotations, Candidate* c) {
  if (!annotations.is_object()) return;
  std::string full = annotations.value("io.containerd.image.name", "");
  std::string name = annotations.value("org.opencontainers.image.ref.name", "");
  if (!name.empty()) c->names.push_back(name);
  if (!full.empty()) {
    AddRef(c, full);
  } else if (name.find_first_of("/:") != std::string::npos) {
    AddRef(c, name);
  }
}

// Docker 25+ archives carry both index.json and manifest.json: RepoTags are the tags.
std::map<std::string, std::vector<std::string>> RepoTagsByConfig(const Source& source) {
  std::map<std::string, std::vector<std::string>> out;
  auto file = source.Get("manifest.json");
  if (!file) return out;
  auto bytes = ReadWhole(file->path);
  if (!bytes.ok()) return out;
  auto doc = ParseJson(*bytes, "manifest.json");
  if (!doc.ok() || !doc->is_array()) return out;
  for (const auto& e : *doc) {
    if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string()) continue;
    std::string hex = fs::path(e["Config"].get<std::string>()).filename().string();
    auto& tags = out[hex];
    if (e.contains("RepoTags") && e["RepoTags"].is_array())
      for (const auto& t : e["RepoTags"])
        if (t.is_string()) tags.push_back(t.get<std::string>());
  }
  return out;
}

Result<std::vector<Candidate>> OciCandidates(const Source& source, Stager* stager, const Platform& platform,
                                             const std::string& input) {
  auto file = source.Get("index.json");
  ASSIGN_OR_RETURN(std::string bytes, ReadWhole(file->path));
  ASSIGN_OR_RETURN(nlohmann::json index, ParseJson(bytes, input + ": index.json"));
  if (!index.contains("manifests") || !index["manifests"].is_array())
    return Status::Error(EINVAL, input + ": index.json has no manifests");
  auto repo_tags = RepoTagsByConfig(source);
  std::vector<Candidate> out;
  for (const auto& m : index["manifests"]) {
    ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m, input + ": index.json"));
    Candidate c;
    ASSIGN_OR_RETURN(c.manifest, ResolveManifest(d, stager, platform, input));
    ASSIGN_OR_RETURN(fs::path mfile, stager->Stage(BlobRel(c.manifest.digest), c.manifest, "index.json"));
    ASSIGN_OR_RETURN(std::string mbytes, ReadWhole(mfile));
    Image probe;
    RETURN_IF_ERROR(ParseManifest(mbytes, input + ": manifest " + c.manifest.digest.str(), &probe));
    c.manifest.media_type = probe.manifest_media_type;
    auto tags = repo_tags.find(probe.config_descriptor.digest.hex());
    if (tags != repo_tags.end()) {
      for (const auto& t : tags->second) AddRef(&c, t);
    } else {
      OciRefs(d.annotations, &c);
    }
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<Candidate>> FindCandidates(const Source& source, Stager* stager, const LoadOptions& options,
                                              const std::string& input) {
  ASSIGN_OR_RETURN(Platform platform, ParsePlatform(options.platform));
  if (source.Has("index.json")) return OciCandidates(source, stager, platform, input);
  if (source.Has("manifest.json")) {
    ASSIGN_OR_RETURN(std::string bytes, ReadWhole(source.Get("manifest.json")->path));
    ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, input + ": manifest.json"));
    if (!doc.is_array()) return Status::Error(EINVAL, input + ": manifest.json is not a list");
    return DockerCandidates(doc, stager, input);
  }
  return Status::Error(EINVAL, input + ": not a docker-archive, oci-archive or OCI layout (no index.json or manifest.json)");
}

Status ChooseRef(std::vector<Candidate>* candidates, const std::string& only_ref, const std::string& input) {
  if (only_ref.empty()) return Status::Ok();
  auto normalized = ParseReference(only_ref);
  std::vector<Candidate> chosen;
  for (auto& c : *candidates) {
    bool by_name = std::find(c.names.begin(), c.names.end(), only_ref) != c.names.end();
    bool by_ref = normalized.ok() && std::find(c.refs.begin(), c.refs.end(), normalized->String()) != c.refs.end();
    if (!by_name && !by_ref) continue;
    c.refs.clear();
    if (normalized.ok() && by_ref) c.refs.push_back(normalized->String());
    chosen.push_back(std::move(c));
    break;
  }
  if (chosen.empty()) return Status::Error(ENOENT, input + ": no image named " + only_ref + " in it");
  *candidates = std::move(chosen);
  return Status::Ok();
}

// index.json names an OCI manifest for every image (image_store.h): a Docker schema2 manifest
// is staged with its OCI conversion, which becomes the image's manifest; the Docker one stays
// as its source (the digest registries know it by).
Status StageOciConversion(const std::string& docker_bytes, Stager* stager, Image* image, const std::string& what) {
  Descriptor docker{kDockerManifestType, image->manifest_digest, docker_bytes.size(), nlohmann::json(), nlohmann::json()};
  ASSIGN_OR_RETURN(std::string oci, OciManifestFromDocker(docker_bytes, docker.digest, what));
  image->manifest_digest = Sha256Of(oci);
  image->manifest_size = oci.size();
  ASSIGN_OR_RETURN(fs::path ignored, stager->StageBytes(oci, image->manifest_digest));
  (void)ignored;
  RETURN_IF_ERROR(ParseManifest(oci, what, image));
  image->source_manifest = docker;
  return Status::Ok();
}

// An OCI manifest that layerfs made from a Docker one (a layerfs save) names it; the archive
// holds it too unless another tool rewrote the archive, and then the image is just OCI.
Status StageSourceManifest(const std::string& rel, Stager* stager, Image* image, const std::string& named_by) {
  auto staged = stager->Stage(rel, image->source_manifest, named_by);
  if (!staged.ok() && staged.status().code() != ENOENT) return staged.status();
  std::error_code ec;
  image->source_manifest.size = staged.ok() ? fs::file_size(*staged, ec) : 0;
  if (!staged.ok() || ec) image->source_manifest = Descriptor();
  return Status::Ok();
}

// Verifies and stages config and layers; parses the image.
Result<Image> StageImage(Candidate& c, Stager* stager, const std::string& input) {
  std::string what = input + ": manifest " + c.manifest.digest.str();
  fs::path mfile;
  if (!c.synthesized.empty()) {
    ASSIGN_OR_RETURN(mfile, stager->StageBytes(c.synthesized, c.manifest.digest));
  } else {
    ASSIGN_OR_RETURN(mfile, stager->Stage(BlobRel(c.manifest.digest), c.manifest, "index.json"));
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadWhole(mfile));
  Image image;
  image.manifest_digest = c.manifest.digest;
  image.manifest_size = bytes.size();
  RETURN_IF_ERROR(ParseManifest(bytes, what, &image));
  auto rel = [&](const Digest& d) { return c.rel_of.count(d) ? c.rel_of.at(d) : BlobRel(d); };
  std::string named_by = "manifest " + c.manifest.digest.str();
  if (image.manifest_media_type == kDockerManifestType) {
    RETURN_IF_ERROR(StageOciConversion(bytes, stager, &image, what));
  } else if (!image.source_manifest.digest.empty()) {
    RETURN_IF_ERROR(StageSourceManifest(rel(image.source_manifest.digest), stager, &image, named_by));
  }
  ASSIGN_OR_RETURN(fs::path cfile, stager->Stage(rel(image.id()), image.config_descriptor, named_by));
  ASSIGN_OR_RETURN(std::string config, ReadWhole(cfile));
  RETURN_IF_ERROR(ParseConfig(config, input + ": config " + image.id().str(), &image));
  for (const auto& l : image.layers) {
    ASSIGN_OR_RETURN(fs::path ignored, stager->Stage(rel(l.digest), l, named_by));
    (void)ignored;
  }
  image.tags = c.refs;
  return image;
}

// Unpacks, in parallel, the layers the store lacks into staging/layers/<diff_id hex>.
Result<std::map<Digest, fs::path>> UnpackMissing(const Store& store, const std::vector<Image>& images,
                                                 const Stager& stager, const fs::path& dir, const TransferCallback& progress) {
  LayerStore layers(store);
  std::map<Digest, Digest> todo;  // diff_id -> blob
  auto report = [&](const Digest& diff_id, const char* status, uint64_t done, uint64_t total, bool bar) {
    if (progress) progress({diff_id.hex().substr(0, 12), status, done, total, bar});
  };
  for (const auto& image : images)
    for (size_t i = 0; i < image.layers.size(); ++i) {
      if (!layers.Has(image.diff_ids[i])) todo.emplace(image.diff_ids[i], image.layers[i].digest);
      else
        report(image.diff_ids[i], "Already exists", 0, 0, false);
    }
  std::vector<std::pair<Digest, Digest>> work(todo.begin(), todo.end());
  std::vector<Status> results(work.size());
  std::vector<size_t> order(work.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  tbb::parallel_for_each(order.begin(), order.end(), [&](size_t i) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in the lambda below.
    const Digest& diff_id = work[i].first;
    const Digest& blob = work[i].second;
    fs::path layer = dir / diff_id.hex();
    std::error_code ec;
    fs::create_directories(layer / "tree", ec);
    if (ec) {
      results[i] = Status::Error(ec.value(), "create " + layer.string() + ": " + ec.message());
      return;
    }
    LayerIndex index;
    const fs::path& file = stager.staged().at(blob);
    uint64_t total = fs::file_size(file, ec);
    report(diff_id, "Loading layer", 0, total, true);
    auto got = UnpackLayer(file, layer / "tree", &index,
                           [&](uint64_t done) { report(diff_id, "Loading layer", done, total, true); });
    if (!got.ok()) {
      results[i] = got.status();
    } else if (*got != diff_id) {
      results[i] = Status::Error(EINVAL, "layer " + blob.str() + " unpacks to " + got->str() + ", config says " + diff_id.str());
    } else {
      results[i] = index.Write(layer / "index").WithContext("layer " + diff_id.str());
    }
    if (results[i].ok()) report(diff_id, "Loaded", total, total, false);
  });
  std::map<Digest, fs::path> out;
  for (size_t i = 0; i < work.size(); ++i) {
    if (!results[i].ok()) return results[i];
    out[work[i].first] = dir / work[i].first.hex();
  }
  return out;
}

// What Publish() is about to add: if we die before index.json names it, the next run finds
// this journal in our staging dir and deletes what nothing uses (store_gc.h).
Status JournalPublish(const Store& store, const Stager& stager, const std::map<Digest, fs::path>& layers,
                      const fs::path& staging) {
  BlobStore blobs(store);
  PublishJournal journal;
  for (const auto& [digest, path] : stager.staged())
    if (!blobs.Has(digest)) journal.blobs.push_back(digest);
  for (const auto& [diff_id, path] : layers) journal.diff_ids.push_back(diff_id);
  return WritePublishJournal(staging, journal);
}

// Moves verified blobs and layers into place; rename() onto an existing layer fails harmlessly.
Result<uint64_t> Publish(const Store& store, const Stager& stager, const std::map<Digest, fs::path>& layers) {
  BlobStore blobs(store);
  uint64_t bytes = 0;
  for (const auto& [digest, path] : stager.staged()) {
    if (blobs.Has(digest)) continue;
    std::error_code ec;
    bytes += fs::file_size(path, ec);
    if (::rename(path.c_str(), blobs.Path(digest).c_str()) != 0) return Status::FromErrno("blob " + digest.str());
    Failpoint("load-mid-publish");
  }
  for (const auto& [diff_id, path] : layers) {
    if (::rename(path.c_str(), store.layer_dir(diff_id).c_str()) != 0 && errno != EEXIST && errno != ENOTEMPTY)
      return Status::FromErrno("layer " + diff_id.str());
  }
  return bytes;
}

Status Record(const Store& store, const std::vector<Image>& images) {
  ImageStore image_store(store);
  ASSIGN_OR_RETURN(std::vector<ImageStore::Record> records, image_store.ReadRecords());
  for (const auto& image : images) {
    Descriptor d{image.manifest_media_type, image.manifest_digest, image.manifest_size, nlohmann::json(), nlohmann::json()};
    if (image.tags.empty()) ImageStore::PutRecord(&records, d, "");
    for (const auto& ref : image.tags) ImageStore::PutRecord(&records, d, ref);
  }
  return image_store.WriteRecords(records);
}

Result<LoadReport> LoadStaged(const Store& store, const fs::path& input, const LoadOptions& options, const fs::path& staging) {
  std::string name = input.string();
  std::error_code ec;
  fs::create_directories(staging / "entries", ec);
  fs::create_directories(staging / "blobs", ec);
  fs::create_directories(staging / "layers", ec);
  if (ec) return Status::Error(ec.value(), "create " + staging.string() + ": " + ec.message());
  ASSIGN_OR_RETURN(Source source, Source::Open(input, staging / "entries"));
  Stager stager(source, staging / "blobs", name);
  ASSIGN_OR_RETURN(std::vector<Candidate> candidates, FindCandidates(source, &stager, options, name));
  if (candidates.empty()) return Status::Error(EINVAL, name + ": contains no image");
  RETURN_IF_ERROR(ChooseRef(&candidates, options.only_ref, name));
  std::vector<Image> images;
  for (auto& c : candidates) {
    ASSIGN_OR_RETURN(Image image, StageImage(c, &stager, name));
    images.push_back(std::move(image));
  }
  ASSIGN_OR_RETURN(auto layers, UnpackMissing(store, images, stager, staging / "layers", options.progress));
  LoadReport report;
  report.new_layers = layers.size();
  RETURN_IF_ERROR(JournalPublish(store, stager, layers, staging));
  ASSIGN_OR_RETURN(report.new_blob_bytes, Publish(store, stager, layers));
  Failpoint("load-before-record");
  RETURN_IF_ERROR(Record(store, images));
  for (auto& image : images) {
    std::vector<std::string> refs = image.tags;
    report.images.push_back({std::move(image), std::move(refs)});
  }
  return report;
}

}  // namespace

Result<LoadReport> LoadImages(const Store& store, const fs::path& input, const LoadOptions& options) {
  // The lock also keeps other processes from sweeping our staging directory.
  ASSIGN_OR_RETURN(StoreLock lock, store.LockExclusive());
  fs::path staging = store.NewTempPath("load");
  auto report = LoadStaged(store, input, options, staging);
  (void)RemoveTree(staging);
  return report;
}

}  // namespace layerfs
