#include "layerstore/archive/image_load.h"

#include <cstdio>

#include <gtest/gtest.h>

#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

TestImage SmallImage(const std::string& tag, const std::string& unique = "app") {
  auto base = MakeLayer({{"bin/", ""}, {"bin/sh", "#!/bin/sh\necho hi\n", "", 0755}, {"etc/os-release", "ID=test\n"}});
  auto top = MakeLayer({{"etc/", ""}, {".wh.gone", ""}, {"app/" + unique, unique}, {"app/link", "", unique}});
  return MakeImage({base, top}, tag.empty() ? std::vector<std::string>{} : std::vector<std::string>{tag});
}

class ImageLoadTest : public StoreTest {
 protected:
  Result<LoadReport> Load(const fs::path& input, const LoadOptions& options = {}) {
    return LoadImages(store(), input, options);
  }
  void ExpectFailsUnchanged(const fs::path& input, const std::string& message_part, const LoadOptions& options = {}) {
    auto before = StoreListing(store().root());
    auto r = Load(input, options);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(message_part), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
    EXPECT_EQ(StoreListing(store().root()), before);
    EXPECT_TRUE(fs::is_empty(store().tmp_dir()));
  }
  void ExpectLoaded(const TestImage& img, const std::string& ref, bool same_manifest = true) {
    auto image = ImageStore(store()).Resolve(ref);
    ASSERT_TRUE(image.ok()) << image.status().message();
    EXPECT_EQ(image->id(), img.config_digest);
    if (same_manifest) {
      EXPECT_EQ(image->manifest_digest, img.manifest_digest);
    }
    LayerStore layers(store());
    for (const auto& l : img.layers) EXPECT_TRUE(layers.Has(l.diff_id));
    EXPECT_TRUE(fs::exists(store().layer_tree(img.layers[0].diff_id) / "bin/sh"));
  }
};

TEST_F(ImageLoadTest, LoadsOciLayoutDirectory) {
  auto img = SmallImage("redis:latest");
  WriteOciLayout(Scratch("layout"), {img});
  auto r = Load(Scratch("layout"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].refs, std::vector<std::string>{"docker.io/library/redis:latest"});
  EXPECT_EQ(r->new_layers, 2u);
  ExpectLoaded(img, "redis");
  EXPECT_TRUE(fs::is_empty(store().tmp_dir()));
}

TEST_F(ImageLoadTest, LoadsOciArchive) {
  auto img = SmallImage("example.com/team/app:2");
  WriteOciArchive(Scratch("img.tar"), {img});
  auto r = Load(Scratch("img.tar"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectLoaded(img, "example.com/team/app:2");
}

TEST_F(ImageLoadTest, LoadsDockerArchiveOldLayoutWithUncompressedLayers) {
  auto base = MakeLayer({{"bin/sh", "sh"}}, Compression::kNone);
  auto img = MakeImage({base, MakeLayer({{"x", "y"}}, Compression::kNone)}, {"busybox:1", "busybox:latest"});
  WriteDockerArchive(Scratch("d.tar"), {img});
  auto r = Load(Scratch("d.tar"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].refs.size(), 2u);
  auto image = ImageStore(store()).Resolve("busybox:1");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->id(), img.config_digest);
  // The archive has no manifest: the one made for it is OCI, as index.json's entries must be.
  EXPECT_EQ(image->manifest_media_type, kOciManifestType);
  EXPECT_EQ(image->config_descriptor.media_type, kOciConfigType);
  EXPECT_EQ(image->layers[0].media_type, kOciLayerTarType);
  EXPECT_TRUE(image->source_manifest.digest.empty());
  EXPECT_EQ(image->tags.size(), 2u);
}

// containerd's export (and Docker 25+ on the containerd image store) names a Docker schema2
// manifest in index.json; the store records its OCI conversion and keeps the Docker manifest.
TEST_F(ImageLoadTest, DockerSchema2ManifestIsKeptBesideItsOciConversion) {
  auto docker = AsDockerSchema2(SmallImage("redis:7"));
  WriteOciArchive(Scratch("containerd.tar"), {docker});
  auto r = Load(Scratch("containerd.tar"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectLoaded(docker, "redis:7", /*same_manifest=*/false);
  auto image = ImageStore(store()).Resolve("redis:7");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->manifest_media_type, kOciManifestType);
  EXPECT_NE(image->manifest_digest, docker.manifest_digest);
  EXPECT_EQ(image->source_manifest.digest, docker.manifest_digest);
  EXPECT_EQ(image->source_manifest.size, docker.manifest.size());
  EXPECT_EQ(image->repo_digest(), docker.manifest_digest);
  EXPECT_EQ(ReadFile(store().blob_path(docker.manifest_digest)), docker.manifest);
  EXPECT_EQ(image->layers[0].media_type, kOciLayerGzipType);
  EXPECT_EQ(ImageStore(store()).Resolve("redis@" + docker.manifest_digest.str())->id(), docker.config_digest);
  auto records = ImageStore(store()).ReadRecords();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].manifest.media_type, kOciManifestType);
  EXPECT_EQ((*records)[0].manifest.digest, image->manifest_digest);
  auto before = StoreListing(store().root());
  ASSERT_TRUE(Load(Scratch("containerd.tar")).ok());
  EXPECT_EQ(StoreListing(store().root()), before);
}

TEST_F(ImageLoadTest, LoadsDocker25ArchiveKeepingTheManifest) {
  auto img = SmallImage("redis:7");
  WriteDockerArchive(Scratch("d25.tar"), {img}, /*docker25=*/true);
  auto r = Load(Scratch("d25.tar"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectLoaded(img, "redis:7");
}

TEST_F(ImageLoadTest, UntaggedImageIsLoadedDangling) {
  auto img = SmallImage("");
  WriteOciArchive(Scratch("u.tar"), {img});
  auto r = Load(Scratch("u.tar"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->images[0].refs.empty());
  auto list = ImageStore(store()).List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].tags.empty());
}

TEST_F(ImageLoadTest, LoadingTwiceAddsNothing) {
  auto img = SmallImage("redis:latest");
  WriteOciArchive(Scratch("img.tar"), {img});
  ASSERT_TRUE(Load(Scratch("img.tar")).ok());
  auto before = StoreListing(store().root());
  auto again = Load(Scratch("img.tar"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->new_blob_bytes, 0u);
  EXPECT_EQ(again->new_layers, 0u);
  EXPECT_EQ(StoreListing(store().root()), before);
}

TEST_F(ImageLoadTest, SharedBaseLayerIsStoredOnce) {
  auto a = SmallImage("a:1", "one");
  auto b = SmallImage("b:1", "two");
  ASSERT_EQ(a.layers[0].diff_id, b.layers[0].diff_id);
  WriteOciArchive(Scratch("a.tar"), {a});
  WriteOciArchive(Scratch("b.tar"), {b});
  ASSERT_TRUE(Load(Scratch("a.tar")).ok());
  auto r = Load(Scratch("b.tar"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->new_layers, 1u);
  EXPECT_EQ(LayerStore(store()).List().size(), 3u);
}

TEST_F(ImageLoadTest, PicksPlatformFromAnIndex) {
  auto amd = SmallImage("", "amd");
  auto arm = SmallImage("", "arm");
  WriteMultiPlatformLayout(Scratch("multi"), amd, arm, "multi:1");
  auto r = Load(Scratch("multi"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->images[0].image.manifest_digest, amd.manifest_digest);
  EXPECT_EQ(r->images[0].refs, std::vector<std::string>{"docker.io/library/multi:1"});
  auto arm_load = Load(Scratch("multi"), {.platform = "linux/arm64/v8"});
  ASSERT_TRUE(arm_load.ok()) << arm_load.status().message();
  EXPECT_EQ(arm_load->images[0].image.manifest_digest, arm.manifest_digest);
  ExpectFailsUnchanged(Scratch("multi"), "no manifest for platform linux/s390x", {.platform = "linux/s390x"});
}

TEST_F(ImageLoadTest, LoadsOnlyTheChosenRef) {
  auto a = SmallImage("a:1", "one");
  auto b = SmallImage("b:1", "two");
  WriteOciArchive(Scratch("ab.tar"), {a, b});
  auto r = Load(Scratch("ab.tar"), {.only_ref = "b:1"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].image.id(), b.config_digest);
  EXPECT_FALSE(ImageStore(store()).Resolve("a:1").ok());
  ExpectFailsUnchanged(Scratch("ab.tar"), "no image named c:1", {.only_ref = "c:1"});
}

TEST_F(ImageLoadTest, MissingFileFails) { ExpectFailsUnchanged(Scratch("nope.tar"), "nope.tar: no such file"); }

TEST_F(ImageLoadTest, NotAnArchiveFails) {
  WriteFile(Scratch("text"), "this is not a tar file, just some words\n");
  ExpectFailsUnchanged(Scratch("text"), "not a docker-archive, oci-archive or OCI layout");
  WriteTar(Scratch("plain.tar"), {{"hello.txt", "hi"}});
  ExpectFailsUnchanged(Scratch("plain.tar"), "no index.json or manifest.json");
}

// One ustar header block: a regular file `name` of `size` bytes, zero ids and mtime.
std::string UstarHeader(const std::string& name, size_t size) {
  std::string h(512, '\0');
  auto put = [&](size_t off, const std::string& field) { h.replace(off, field.size(), field); };
  put(0, name);
  put(100, std::string("000644 ") + '\0');
  put(108, std::string("000000 ") + '\0');
  put(116, std::string("000000 ") + '\0');
  char octal[13];
  std::snprintf(octal, sizeof octal, "%011zo ", size);
  put(124, octal);
  put(136, "00000000000 ");
  put(148, "        ");  // the checksum counts its own field as spaces
  put(156, "0");
  put(257, std::string("ustar") + '\0' + "00");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(octal, sizeof octal, "%06o", sum);
  put(148, std::string(octal) + '\0' + ' ');
  return h;
}

// Found by tests/fuzz/image_load_fuzz: reading this archive (one header, a regular file named
// "@/"), libarchive returns an entry without a pathname, and the loader built a string from
// the null pointer (a crash).
TEST_F(ImageLoadTest, EntryWithoutANameFails) {
  std::string content = "u\"i\"application/vnd.oci.image.inde=.v2+json\"m`go";
  std::string tar = UstarHeader("@/", content.size()) + content;
  tar.resize(2048, '\0');  // padding to the block, then the two zero blocks that end a tar
  WriteFile(Scratch("noname.tar"), tar);
  ExpectFailsUnchanged(Scratch("noname.tar"), "has no name)");
}

TEST_F(ImageLoadTest, BlobDigestMismatchFails) {
  auto img = SmallImage("redis:latest");
  WriteOciLayout(Scratch("layout"), {img});
  fs::path blob = Scratch("layout") / "blobs/sha256" / img.layers[1].digest.hex();
  std::string bytes = ReadFile(blob);
  bytes[bytes.size() / 2] ^= 0x55;
  WriteFile(blob, bytes);
  ExpectFailsUnchanged(Scratch("layout"), "does not match its digest " + img.layers[1].digest.str());
}

TEST_F(ImageLoadTest, ManifestNamingAMissingBlobFails) {
  auto img = SmallImage("redis:latest");
  WriteOciLayout(Scratch("layout"), {img});
  fs::remove(Scratch("layout") / "blobs/sha256" / img.layers[0].digest.hex());
  ExpectFailsUnchanged(Scratch("layout"), "blob " + img.layers[0].digest.str() + " named by manifest");
}

TEST_F(ImageLoadTest, TruncatedGzipLayerFailsAndLeavesNoLayer) {
  auto good = MakeLayer({{"bin/sh", "sh"}});
  auto bad = MakeLayer({{"big", std::string(200000, 'x') + "tail"}});
  bad.blob.resize(bad.blob.size() / 2);
  bad.digest = Sha256Of(bad.blob);
  auto img = MakeImage({good, bad}, {"broken:1"});
  WriteOciArchive(Scratch("t.tar"), {img});
  ExpectFailsUnchanged(Scratch("t.tar"), "layer " + bad.digest.str());
  EXPECT_FALSE(LayerStore(store()).Has(good.diff_id));
}

TEST_F(ImageLoadTest, DiffIdMismatchFails) {
  auto layer = MakeLayer({{"a", "b"}});
  layer.diff_id = Sha256Of("something else");
  WriteOciArchive(Scratch("x.tar"), {MakeImage({layer}, {"x:1"})});
  ExpectFailsUnchanged(Scratch("x.tar"), "config says " + layer.diff_id.str());
}

TEST_F(ImageLoadTest, TruncatedArchiveFails) {
  auto img = SmallImage("redis:latest");
  WriteOciArchive(Scratch("img.tar"), {img});
  std::string bytes = ReadFile(Scratch("img.tar"));
  WriteFile(Scratch("cut.tar"), bytes.substr(0, bytes.size() / 2));
  auto before = StoreListing(store().root());
  auto r = Load(Scratch("cut.tar"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(StoreListing(store().root()), before);
}

}  // namespace
}  // namespace layerfs::testing
