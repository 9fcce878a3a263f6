#include "layerstore/store/image_gc.h"

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class ImageGcTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    empty_ = StoreListing(store().root());
    base_ = MakeLayer({{"bin/sh", "shell"}});
    a_ = MakeImage({base_, MakeLayer({{"a", "aaaa"}})}, {"a:1"});
    b_ = MakeImage({base_, MakeLayer({{"b", "bb"}})}, {"b:1"});
    WriteOciArchive(Scratch("ab.tar"), {a_, b_});
    auto r = LoadImages(store(), Scratch("ab.tar"), {});
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  std::set<std::string> empty_;
  TestLayer base_;
  TestImage a_, b_;
};

TEST_F(ImageGcTest, RemovingAnImageKeepsWhatAnotherUses) {
  auto r = RemoveImage(store(), "a:1", false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->untagged, std::vector<std::string>{"docker.io/library/a:1"});
  EXPECT_EQ(r->deleted_images, std::vector<Digest>{a_.config_digest});
  EXPECT_EQ(r->deleted_layers, std::vector<Digest>{a_.layers[1].diff_id});
  EXPECT_EQ(r->reclaimed, 4u);
  LayerStore layers(store());
  EXPECT_TRUE(layers.Has(base_.diff_id));
  EXPECT_FALSE(fs::exists(store().blob_path(a_.manifest_digest)));
  EXPECT_TRUE(fs::exists(store().blob_path(base_.digest)));
  ASSERT_TRUE(RemoveImage(store(), "b:1", false).ok());
  EXPECT_EQ(StoreListing(store().root()), empty_);
}

// An image that came as a Docker schema2 manifest holds two manifest blobs; rmi frees both.
TEST_F(ImageGcTest, RemovingADockerSourcedImageRemovesBothManifests) {
  auto docker = AsDockerSchema2(MakeImage({base_, MakeLayer({{"d", "dd"}})}, {"d:1"}));
  WriteOciArchive(Scratch("d.tar"), {docker});
  ASSERT_TRUE(LoadImages(store(), Scratch("d.tar"), {}).ok());
  auto image = ImageStore(store()).Resolve("d:1");
  ASSERT_TRUE(image.ok());
  ASSERT_TRUE(fs::exists(store().blob_path(docker.manifest_digest)));
  ASSERT_TRUE(RemoveImage(store(), "d:1", false).ok());
  EXPECT_FALSE(fs::exists(store().blob_path(docker.manifest_digest)));
  EXPECT_FALSE(fs::exists(store().blob_path(image->manifest_digest)));
  ASSERT_TRUE(RemoveImage(store(), "a:1", false).ok());
  ASSERT_TRUE(RemoveImage(store(), "b:1", false).ok());
  EXPECT_EQ(StoreListing(store().root()), empty_);
}

TEST_F(ImageGcTest, ChainCachesOfDeletedImagesGo) {
  fs::path chain = store().chain_dir(ChainId({base_.diff_id, a_.layers[1].diff_id}));
  fs::path shared = store().chain_dir(ChainId({base_.diff_id}));
  fs::create_directories(chain);
  fs::create_directories(shared);
  WriteFile(chain / "merged", "x");
  ASSERT_TRUE(RemoveImage(store(), "a:1", false).ok());
  EXPECT_FALSE(fs::exists(chain));
  EXPECT_TRUE(fs::exists(shared));  // b's chain starts with it
}

TEST_F(ImageGcTest, SeveralTagsByIdNeedForce) {
  ASSERT_TRUE(ImageStore(store()).Tag("a:1", "a:2").ok());
  auto before = StoreListing(store().root());
  auto r = RemoveImage(store(), a_.config_digest.hex().substr(0, 12), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be forced"), std::string::npos);
  EXPECT_EQ(StoreListing(store().root()), before);
  auto by_tag = RemoveImage(store(), "a:2", false);  // one of two tags: untag only
  ASSERT_TRUE(by_tag.ok());
  EXPECT_TRUE(by_tag->deleted_images.empty());
  ASSERT_TRUE(ImageStore(store()).Tag("a:1", "a:2").ok());
  auto forced = RemoveImage(store(), a_.config_digest.str(), true);
  ASSERT_TRUE(forced.ok()) << forced.status().message();
  EXPECT_EQ(forced->untagged.size(), 2u);
  EXPECT_EQ(forced->deleted_images.size(), 1u);
}

TEST_F(ImageGcTest, AnImageAContainerUsesIsKept) {
  auto image = ImageStore(store()).Resolve("a:1");
  ASSERT_TRUE(image.ok());
  auto c = ContainerStore(store()).Create(*image, "docker.io/library/a:1", "web");
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto refused = RemoveImage(store(), "a:1", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("container " + c->id.substr(0, 12)), std::string::npos);
  auto forced = RemoveImage(store(), "a:1", true);
  ASSERT_TRUE(forced.ok());
  EXPECT_TRUE(forced->deleted_images.empty());
  EXPECT_TRUE(LayerStore(store()).Has(a_.layers[1].diff_id));
  auto prune_all = PruneImages(store(), true);
  ASSERT_TRUE(prune_all.ok());
  EXPECT_EQ(prune_all->deleted_images, std::vector<Digest>{b_.config_digest});
  EXPECT_TRUE(ImageStore(store()).Resolve(a_.config_digest.hex()).ok());
}

TEST_F(ImageGcTest, PruneRemovesOnlyDanglingImages) {
  ASSERT_TRUE(ImageStore(store()).Tag("b:1", "a:1").ok());  // a becomes dangling
  auto r = PruneImages(store(), false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->deleted_images, std::vector<Digest>{a_.config_digest});
  EXPECT_TRUE(ImageStore(store()).Resolve("b:1").ok());
  auto again = PruneImages(store(), false);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deleted_images.empty());
}

}  // namespace
}  // namespace layerfs::testing
