// Writes the seed corpora of tests/fuzz (corpus/<target>/) from the tests' own builders:
// small valid inputs of each kind. Run once after a format changes:
//   build-fuzz/tests/fuzz/make_fuzz_seeds tests/fuzz/corpus
#include <sys/sysmacros.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fs/index/merged_index.h"
#include "layerstore/estargz/estargz_convert.h"
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_reader.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/store.h"
#include "tests/fuzz/fuzz_seed_chain.h"
#include "tests/tools/test_images.h"

namespace {

using namespace layerfs;
using namespace layerfs::testing;
namespace fs = std::filesystem;

void Seed(const fs::path& corpus, const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(corpus / target);
  WriteFile(corpus / target / name, bytes);
}

// Files, dirs, a symlink leaving through "..", a whiteout and an opaque marker.
std::vector<TestFile> LayerFiles() {
  return {{"etc/", ""}, {"etc/passwd", "root:x:0:0::/root:/bin/sh\n"}, {"bin/sh", "#!sh", "", 0755}, {"lib/link", "", "../bin/sh"}, {"var/.wh.cache", ""}, {"opt/.wh..wh..opq", ""}};
}

void LayerUnpackSeeds(const fs::path& corpus) {
  Seed(corpus, "layer_unpack", "tar", BuildLayerTar(LayerFiles()));
  Seed(corpus, "layer_unpack", "tar.gz", BuildLayerTar(LayerFiles(), Compression::kGzip));
  Seed(corpus, "layer_unpack", "tar.zst", BuildLayerTar(LayerFiles(), Compression::kZstd));
}

// One entry of every type, with the fields each type uses.
LayerIndex SeedIndex(int variant) {
  LayerIndex index;
  auto& e = index.entries();
  e.push_back({.path = "", .type = EntryType::kDirectory, .mode = 0755, .opaque = variant == 1});
  e.push_back({.path = "bin", .type = EntryType::kDirectory, .mode = 0755});
  e.push_back({.path = "bin/sh", .mode = 04755, .size = 4, .mtime_sec = 1700000000, .hardlink_group = 1, .xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.a", "b"}}});
  e.push_back({.path = "bin/sh2", .mode = 0755, .size = 4, .hardlink_group = 1});
  e.push_back({.path = "dev", .type = EntryType::kDirectory, .mode = 0755});
  e.push_back({.path = "dev/null", .type = EntryType::kCharDevice, .mode = 0666, .rdev = makedev(1, 3)});
  e.push_back({.path = "dev/sda", .type = EntryType::kBlockDevice, .mode = 0660, .rdev = makedev(8, 0)});
  e.push_back({.path = "dev/fifo", .type = EntryType::kFifo, .mode = 0600});
  e.push_back({.path = "dev/sock", .type = EntryType::kSocket, .mode = 0600});
  e.push_back({.path = "lib", .type = EntryType::kSymlink, .mode = 0777, .size = 7, .link_target = "usr/lib"});
  e.push_back({.path = variant == 1 ? "etc" : "var/cache", .type = EntryType::kWhiteout});
  index.Sort();
  return index;
}

void IndexSeeds(const fs::path& corpus, const fs::path& scratch) {
  Result<Store> store = Store::Open(scratch / "store");
  if (!store.ok()) throw std::runtime_error(store.status().message());
  LayerIndex lower = SeedIndex(0), upper = SeedIndex(1);
  for (int i = 0; i < 2; ++i) {
    fs::path file = scratch / ("index" + std::to_string(i));
    if (!(i == 0 ? lower : upper).Write(file).ok()) throw std::runtime_error("write layer index");
    Seed(corpus, "layer_index", "index" + std::to_string(i), ReadFile(file));
  }
  for (size_t layers = 1; layers <= fuzz::kSeedChainLayers; ++layers) {
    std::vector<const LayerIndex*> chain = {&lower, &upper};
    chain.resize(fuzz::kSeedChainLayers);
    if (layers == 1) chain[1] = &lower;  // the same layer twice: a different merge
    auto merged = MergedIndex::Build(chain, fuzz::SeedChainId());
    fs::path file = scratch / ("merged" + std::to_string(layers));
    if (!merged.ok() || !merged->Write(*store, file).ok()) throw std::runtime_error("write merged index");
    Seed(corpus, "merged_index", "merged" + std::to_string(layers), ReadFile(file));
  }
}

void OciSeeds(const fs::path& corpus, const TestImage& img) {
  TestImage docker = AsDockerSchema2(img);
  Seed(corpus, "oci_image", "manifest.oci", img.manifest);
  Seed(corpus, "oci_image", "manifest.docker", docker.manifest);
  Seed(corpus, "oci_image", "config", img.config);
  Seed(corpus, "oci_image", "index",
       R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
       R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
           img.manifest_digest.str() +
           R"(","size":)" + std::to_string(img.manifest.size()) +
           R"(,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]})");
}

// An archive as image_load_fuzz's input: its entries joined by the target's separator.
std::string ArchiveAsFuzzInput(const fs::path& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), tar.c_str(), 1 << 16) != ARCHIVE_OK) throw std::runtime_error("read tar");
  std::string out;
  archive_entry* entry;
  while (archive_read_next_header(a.get(), &entry) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(entry);
    std::string content;
    if (archive_entry_filetype(entry) == AE_IFLNK) {
      name += std::string(" -> ") + archive_entry_symlink(entry);
    } else if (archive_entry_filetype(entry) == AE_IFREG) {
      content.resize(archive_entry_size(entry));
      archive_read_data(a.get(), content.data(), content.size());
      if (name.starts_with("blobs/sha256/")) name = "@blob";
    } else {
      continue;  // directories: the loader needs none
    }
    out += (out.empty() ? "" : "\n--8<--\n") + name + "\n" + content;
  }
  return out;
}

void ImageLoadSeeds(const fs::path& corpus, const fs::path& scratch, const TestImage& img) {
  WriteDockerArchive(scratch / "docker.tar", {img});
  WriteDockerArchive(scratch / "docker25.tar", {img}, /*docker25=*/true);
  WriteOciArchive(scratch / "oci.tar", {img});
  for (const char* name : {"docker.tar", "docker25.tar", "oci.tar"})
    Seed(corpus, "image_load", name, ArchiveAsFuzzInput(scratch / name));
}

// eStargz blobs of the seed layer: one chunk per file, and files cut into 3-byte chunks; the
// bare TOC JSON of the latter too.
void EstargzSeeds(const fs::path& corpus, const fs::path& scratch) {
  Result<Store> store = Store::Open(scratch / "estargz-store");
  if (!store.ok()) throw std::runtime_error(store.status().message());
  std::string layer = BuildLayerTar(LayerFiles(), Compression::kGzip);
  Result<Digest> digest = BlobStore(*store).PutBytes(layer);
  if (!digest.ok()) throw std::runtime_error(digest.status().message());
  Descriptor d{kOciLayerGzipType, *digest, layer.size(), nlohmann::json(), nlohmann::json()};
  for (uint64_t chunk : {kEstargzDefaultChunkSize, uint64_t{3}}) {
    EstargzOptions o;
    o.chunk_size = chunk;
    o.prefetch = {"etc/passwd"};
    Result<EstargzBlob> blob = ConvertLayerToEstargz(*store, d, o);
    if (!blob.ok()) throw std::runtime_error(blob.status().message());
    std::string bytes = ReadFile(BlobStore(*store).Path(blob->blob.digest));
    Seed(corpus, "estargz", "blob-chunk" + std::to_string(chunk), bytes);
    Result<uint64_t> toc = ParseEstargzFooter(std::string_view(bytes).substr(bytes.size() - kEstargzFooterSize));
    if (!toc.ok()) throw std::runtime_error(toc.status().message());
    std::string_view member = std::string_view(bytes).substr(*toc, bytes.size() - kEstargzFooterSize - *toc);
    Result<EstargzToc> parsed = ReadEstargzToc(member, *toc, blob->toc_digest);
    if (!parsed.ok()) throw std::runtime_error(parsed.status().message());
    if (chunk == 3) Seed(corpus, "estargz", "toc.json", EstargzTocJson(*parsed));
  }
}

void TextSeeds(const fs::path& corpus) {
  const char* refs[] = {"redis", "user/app:1", "localhost:5000/a/b_c__d-e.f", "ghcr.io/o/r:v1.2",
                        "name@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
  for (size_t i = 0; i < std::size(refs); ++i) Seed(corpus, "reference", "ref" + std::to_string(i), refs[i]);
  Seed(corpus, "registry_headers", "bearer",
       R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  Seed(corpus, "registry_headers", "basic", R"(Basic realm="Registry Realm")");
  Seed(corpus, "registry_headers", "token", R"({"token":"abc","access_token":"def","expires_in":300})");
  Seed(corpus, "registry_headers", "base64", "dXNlcjpwYXNzd29yZA==");
  Seed(corpus, "registry_headers", "content-range", "Content-Range: bytes 100-199/1000\r\n");
  Seed(corpus, "registry_headers", "www-authenticate",
       "WWW-Authenticate: Bearer realm=\"http://127.0.0.1/t\",error=\"insufficient_scope\"\r\n");
  Seed(corpus, "dockerfile", "simple",
       "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS build\nENV A=1 B=\"two words\"\n"
       "ENV LEGACY value with spaces\nRUN echo $A \\\n  && echo ${B:-x}\nCOPY --chown=1:1 a b /dst/\n"
       "ADD [\"x y\", \"/z\"]\nWORKDIR /w/${A}\nUSER ${U:-root}\nLABEL k=\"v\" k2='$lit'\n"
       "EXPOSE 80/tcp\nVOLUME [\"/data\"]\nCMD [\"sh\", \"-c\", \"echo ${A:+set}\"]\n");
  Seed(corpus, "dockerfile", "escape", "# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\nENV P=${X:?missing}\n");
  Seed(corpus, "dockerignore", "patterns",
       "# comment\n*.log\n!important.log\n/build\n**/node_modules\nsrc/**/*.o\n[a-c]?.txt\n\\!literal\n");
  Seed(corpus, "overlay_options", "podman",
       "lowerdir=/l/a:/l/b,upperdir=/u,workdir=/w,uidmapping=:0:100000:65536,gidmapping=0:100000:65536");
  Seed(corpus, "overlay_options", "squash",
       "lowerdir=/l/a\\,b,squash_to_root,noacl,fsync=0,context=\"system_u:object_r:container_file_t:s0\"");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  fs::path corpus = argv[1];
  TempDir scratch;
  LayerUnpackSeeds(corpus);
  IndexSeeds(corpus, scratch.path());
  TestImage img = MakeImage({MakeLayer({{"bin/sh", "#!sh"}, {"etc/", ""}, {"lib/link", "", "../bin/sh"}})}, {"redis:latest"});
  OciSeeds(corpus, img);
  ImageLoadSeeds(corpus, scratch.path(), img);
  TextSeeds(corpus);
  EstargzSeeds(corpus, scratch.path());
  return 0;
}
