#include "tests/tools/test_images.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace layerfs::testing {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

la_ssize_t AppendToString(archive*, void* out, const void* buf, size_t len) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

void Check(int r, archive* a) {
  if (r < ARCHIVE_WARN) throw std::runtime_error(std::string("libarchive: ") + archive_error_string(a));
}

// A libarchive writer into a string; entries added with Add().
class TarWriter {
 public:
  explicit TarWriter(Compression c, bool raw = false) : a_(archive_write_new(), archive_write_free) {
    if (raw) {
      archive_write_set_format_raw(a_.get());
    } else {
      archive_write_set_format_pax_restricted(a_.get());
    }
    if (c == Compression::kGzip) archive_write_add_filter_gzip(a_.get());
    if (c == Compression::kZstd) archive_write_add_filter_zstd(a_.get());
    archive_write_set_bytes_in_last_block(a_.get(), 1);
    Check(archive_write_open(a_.get(), &out_, nullptr, AppendToString, nullptr), a_.get());
  }
  void Add(const std::string& path, const std::string& content, const std::string& symlink = "", uint32_t mode = 0) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    bool dir = !path.empty() && path.back() == '/';
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_mtime(e.get(), 1700000000, 0);
    if (!symlink.empty()) {
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_symlink(e.get(), symlink.c_str());
      archive_entry_set_perm(e.get(), 0777);
    } else if (dir) {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
      archive_entry_set_perm(e.get(), mode ? mode : 0755);
    } else {
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), mode ? mode : 0644);
      archive_entry_set_size(e.get(), static_cast<la_int64_t>(content.size()));
    }
    Check(archive_write_header(a_.get(), e.get()), a_.get());
    if (!content.empty() && symlink.empty() && !dir)
      if (archive_write_data(a_.get(), content.data(), content.size()) < 0) Check(ARCHIVE_FATAL, a_.get());
  }
  std::string Finish() {
    Check(archive_write_close(a_.get()), a_.get());
    return std::move(out_);
  }

 private:
  std::string out_;
  std::unique_ptr<archive, decltype(&archive_write_free)> a_;
};

void WriteBytes(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Json Desc(const std::string& type, const Digest& d, size_t size) {
  return {{"mediaType", type}, {"digest", d.str()}, {"size", size}};
}

std::string FullName(const std::string& tag) {
  if (tag.find('/') == std::string::npos) return "docker.io/library/" + tag;
  if (tag.substr(0, tag.find('/')).find_first_of(".:") == std::string::npos) return "docker.io/" + tag;
  return tag;
}

// name -> bytes of every file of an OCI layout holding the images.
std::vector<std::pair<std::string, std::string>> OciFiles(const std::vector<TestImage>& images, bool docker25) {
  std::vector<std::pair<std::string, std::string>> files;
  std::set<std::string> seen;
  auto blob = [&](const Digest& d, const std::string& bytes) {
    if (seen.insert(d.hex()).second) files.emplace_back("blobs/sha256/" + d.hex(), bytes);
  };
  Json manifests = Json::array();
  Json docker_manifest = Json::array();
  for (const auto& img : images) {
    for (const auto& l : img.layers) blob(l.digest, l.blob);
    blob(img.config_digest, img.config);
    blob(img.manifest_digest, img.manifest);
    // containerd's export names a Docker manifest by its own media type.
    Json d = Desc(Json::parse(img.manifest)["mediaType"].get<std::string>(), img.manifest_digest, img.manifest.size());
    if (img.tags.empty()) manifests.push_back(d);
    for (const auto& tag : img.tags) {
      d["annotations"] = {{"io.containerd.image.name", FullName(tag)},
                          {"org.opencontainers.image.ref.name", docker25 ? tag.substr(tag.rfind(':') + 1) : tag}};
      manifests.push_back(d);
    }
    Json layers = Json::array();
    for (const auto& l : img.layers) layers.push_back("blobs/sha256/" + l.digest.hex());
    docker_manifest.push_back({{"Config", "blobs/sha256/" + img.config_digest.hex()}, {"RepoTags", img.tags}, {"Layers", layers}});
  }
  files.emplace_back("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  files.emplace_back("index.json", Json{{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", manifests}}.dump());
  if (docker25) files.emplace_back("manifest.json", docker_manifest.dump());
  return files;
}

}  // namespace

std::string BuildLayerTar(const std::vector<TestFile>& files, Compression c) {
  TarWriter w(c);
  for (const auto& f : files) w.Add(f.path, f.content, f.symlink, f.mode);
  return w.Finish();
}

std::string BuildLayerTarGz(const std::vector<TestFile>& files) { return BuildLayerTar(files, Compression::kGzip); }

std::string Gzip(const std::string& bytes) { return Compress(bytes, Compression::kGzip); }

std::string Compress(const std::string& bytes, Compression c) {
  TarWriter w(c, /*raw=*/true);
  w.Add("data", bytes);
  return w.Finish();
}

static TestLayer FromTar(const std::string& tar, Compression c, uint64_t content_size) {
  TestLayer l;
  l.diff_id = Sha256Of(tar);
  l.blob = c == Compression::kNone ? tar : Compress(tar, c);
  l.digest = Sha256Of(l.blob);
  l.media_type = c == Compression::kGzip   ? "application/vnd.oci.image.layer.v1.tar+gzip"
                 : c == Compression::kZstd ? "application/vnd.oci.image.layer.v1.tar+zstd"
                                           : "application/vnd.oci.image.layer.v1.tar";
  l.content_size = content_size;
  return l;
}

TestLayer MakeLayer(const std::vector<TestFile>& files, Compression c) {
  uint64_t size = 0;
  for (const auto& f : files) {
    bool whiteout = fs::path(f.path).filename().string().rfind(".wh.", 0) == 0;
    if (!f.symlink.empty()) size += f.symlink.size();
    else if (!whiteout && (f.path.empty() || f.path.back() != '/'))
      size += f.content.size();
  }
  return FromTar(BuildLayerTar(files, Compression::kNone), c, size);
}

TestLayer MakeRandomLayer(const std::string& file_name, uint64_t bytes, uint32_t seed, Compression c) {
  std::string data(bytes, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  return FromTar(BuildLayerTar({{file_name, data}}, Compression::kNone), c, bytes);
}

TestImage MakeImage(const std::vector<TestLayer>& layers, const std::vector<std::string>& tags, const std::string& created) {
  TestImage img;
  img.layers = layers;
  img.tags = tags;
  Json diff_ids = Json::array();
  Json history = Json::array();
  Json mlayers = Json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    diff_ids.push_back(layers[i].diff_id.str());
    history.push_back({{"created", created}, {"created_by", "layer " + std::to_string(i)}});
    mlayers.push_back(Desc(layers[i].media_type, layers[i].digest, layers[i].blob.size()));
  }
  history.push_back({{"created", created}, {"created_by", "/bin/sh -c #(nop)  CMD [\"sh\"]"}, {"empty_layer", true}});
  Json config = {{"architecture", "amd64"}, {"os", "linux"}, {"created", created}, {"config", {{"Cmd", {"sh"}}, {"Env", {"PATH=/bin"}}}}, {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}, {"history", history}};
  img.config = config.dump();
  img.config_digest = Sha256Of(img.config);
  Json manifest = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.manifest.v1+json"}, {"config", Desc("application/vnd.oci.image.config.v1+json", img.config_digest, img.config.size())}, {"layers", mlayers}};
  img.manifest = manifest.dump();
  img.manifest_digest = Sha256Of(img.manifest);
  return img;
}

TestImage AsDockerSchema2(const TestImage& img) {
  TestImage out = img;
  Json manifest = Json::parse(img.manifest);
  manifest["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json";
  manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json";
  for (auto& l : out.layers) {
    if (l.media_type == "application/vnd.oci.image.layer.v1.tar+gzip") l.media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    if (l.media_type == "application/vnd.oci.image.layer.v1.tar") l.media_type = "application/vnd.docker.image.rootfs.diff.tar";
  }
  for (size_t i = 0; i < out.layers.size(); ++i) manifest["layers"][i]["mediaType"] = out.layers[i].media_type;
  out.manifest = manifest.dump();
  out.manifest_digest = Sha256Of(out.manifest);
  return out;
}

void WriteTar(const fs::path& file, const std::vector<std::pair<std::string, std::string>>& entries) {
  TarWriter w(Compression::kNone);
  for (const auto& [name, bytes] : entries) w.Add(name, bytes);
  WriteBytes(file, w.Finish());
}

void WriteOciLayout(const fs::path& dir, const std::vector<TestImage>& images) {
  for (const auto& [name, bytes] : OciFiles(images, false)) WriteBytes(dir / name, bytes);
}

void WriteOciArchive(const fs::path& file, const std::vector<TestImage>& images) {
  WriteTar(file, OciFiles(images, false));
}

void WriteDockerArchive(const fs::path& file, const std::vector<TestImage>& images, bool docker25) {
  if (docker25) return WriteTar(file, OciFiles(images, true));
  std::vector<std::pair<std::string, std::string>> entries;
  Json manifest = Json::array();
  Json repositories = Json::object();
  for (const auto& img : images) {
    Json layers = Json::array();
    std::string last;
    for (const auto& l : img.layers) {
      std::string id = Sha256Of(img.config_digest.str() + l.diff_id.str() + last).hex();
      entries.emplace_back(id + "/VERSION", "1.0");
      entries.emplace_back(id + "/json", Json{{"id", id}}.dump());
      entries.emplace_back(id + "/layer.tar", l.blob);
      layers.push_back(id + "/layer.tar");
      last = id;
    }
    entries.emplace_back(img.config_digest.hex() + ".json", img.config);
    manifest.push_back({{"Config", img.config_digest.hex() + ".json"}, {"RepoTags", img.tags}, {"Layers", layers}});
    for (const auto& tag : img.tags) repositories[tag.substr(0, tag.rfind(':'))][tag.substr(tag.rfind(':') + 1)] = last;
  }
  entries.emplace_back("manifest.json", manifest.dump());
  entries.emplace_back("repositories", repositories.dump());
  WriteTar(file, entries);
}

void WriteMultiPlatformLayout(const fs::path& dir, const TestImage& amd64, const TestImage& arm64, const std::string& tag) {
  auto files = OciFiles({amd64, arm64}, false);
  Json list = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", Json::array({Desc("application/vnd.oci.image.manifest.v1+json", arm64.manifest_digest, arm64.manifest.size()), Desc("application/vnd.oci.image.manifest.v1+json", amd64.manifest_digest, amd64.manifest.size())})}};
  list["manifests"][0]["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
  list["manifests"][1]["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  std::string list_bytes = list.dump();
  Digest list_digest = Sha256Of(list_bytes);
  for (auto& [name, bytes] : files) {
    if (name != "index.json") continue;
    Json d = Desc("application/vnd.oci.image.index.v1+json", list_digest, list_bytes.size());
    d["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
    bytes = Json{{"schemaVersion", 2}, {"manifests", Json::array({d})}}.dump();
  }
  files.emplace_back("blobs/sha256/" + list_digest.hex(), list_bytes);
  for (const auto& [name, bytes] : files) WriteBytes(dir / name, bytes);
}

}  // namespace layerfs::testing
