#include "layerstore/archive/image_save.h"

#include <gtest/gtest.h>

#include "layerstore/archive/image_import.h"
#include "layerstore/archive/image_load.h"
#include "layerstore/store/image_store.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class ImageSaveTest : public StoreTest {};

TEST_F(ImageSaveTest, SaveThenLoadGivesTheSameManifestAndBlobs) {
  auto img = MakeImage({MakeLayer({{"a", "1"}}), MakeLayer({{"b", "2"}}, Compression::kZstd)}, {"r/app:3"});
  WriteOciArchive(Scratch("in.tar"), {img});
  ASSERT_TRUE(LoadImages(store(), Scratch("in.tar"), {}).ok());
  for (auto format : {SaveFormat::kDockerArchive, SaveFormat::kOciArchive}) {
    fs::path out = Scratch(format == SaveFormat::kOciArchive ? "oci.tar" : "docker.tar");
    ASSERT_TRUE(SaveImages(store(), {"r/app:3"}, out, format).ok());
    auto fresh = Store::Open(Scratch("fresh") / out.filename());
    ASSERT_TRUE(fresh.ok());
    auto r = LoadImages(*fresh, out, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->images[0].refs, std::vector<std::string>{"docker.io/r/app:3"});
    EXPECT_EQ(r->images[0].image.manifest_digest, img.manifest_digest);
    for (const auto& l : img.layers) EXPECT_EQ(ReadFile(fresh->blob_path(l.digest)), l.blob);
  }
}

// The archive carries the Docker manifest too, so a store that loads it knows the image by
// the same registry digest; skopeo reads the OCI manifest index.json names.
TEST_F(ImageSaveTest, SaveOfADockerSourcedImageKeepsItsRegistryDigest) {
  auto docker = AsDockerSchema2(MakeImage({MakeLayer({{"a", "1"}})}, {"r/app:4"}));
  WriteOciArchive(Scratch("in.tar"), {docker});
  ASSERT_TRUE(LoadImages(store(), Scratch("in.tar"), {}).ok());
  auto stored = ImageStore(store()).Resolve("r/app:4");
  ASSERT_TRUE(stored.ok());
  for (auto format : {SaveFormat::kDockerArchive, SaveFormat::kOciArchive}) {
    fs::path out = Scratch(format == SaveFormat::kOciArchive ? "oci.tar" : "docker.tar");
    ASSERT_TRUE(SaveImages(store(), {"r/app:4"}, out, format).ok());
    auto fresh = Store::Open(Scratch("fresh") / out.filename());
    ASSERT_TRUE(fresh.ok());
    auto r = LoadImages(*fresh, out, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto image = ImageStore(*fresh).Resolve("r/app:4");
    ASSERT_TRUE(image.ok());
    EXPECT_EQ(image->manifest_digest, stored->manifest_digest);
    EXPECT_EQ(image->manifest_media_type, kOciManifestType);
    EXPECT_EQ(image->repo_digest(), docker.manifest_digest);
  }
}

TEST_F(ImageSaveTest, UnknownImageOrFormatFailsWithoutOutput) {
  EXPECT_EQ(SaveImages(store(), {"nosuch"}, Scratch("o.tar"), SaveFormat::kOciArchive).code(), ENOENT);
  EXPECT_FALSE(fs::exists(Scratch("o.tar")));
  EXPECT_FALSE(ParseSaveFormat("zip").ok());
  EXPECT_EQ(*ParseSaveFormat("oci-archive"), SaveFormat::kOciArchive);
}

TEST_F(ImageSaveTest, ImportedRootfsBecomesAOneLayerImage) {
  WriteFile(Scratch("rootfs.tar"), BuildLayerTar({{"etc/", ""}, {"etc/hostname", "box\n"}}));
  auto image = ImportRootfs(store(), Scratch("rootfs.tar"), {.ref = "box:1", .message = "hello"});
  ASSERT_TRUE(image.ok()) << image.status().message();
  ASSERT_EQ(image->layers.size(), 1u);
  EXPECT_EQ(image->layers[0].media_type, kOciLayerTarType);
  EXPECT_EQ(image->diff_ids[0], Sha256Of(ReadFile(Scratch("rootfs.tar"))));
  EXPECT_EQ(image->history.back().comment, "hello");
  EXPECT_TRUE(fs::exists(store().layer_tree(image->diff_ids[0]) / "etc/hostname"));
  EXPECT_EQ(ImageStore(store()).Resolve("box:1")->id(), image->id());
}

}  // namespace
}  // namespace layerfs::testing
