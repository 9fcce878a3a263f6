// Store-wide GC and `system prune`: the live set (images, containers, build cache records), the
// sweep of unreferenced blobs, layers and merged indexes (with its age guard), dead processes'
// tmp/ litter, and recovery from a load journal at the next Store::Open.
#include "layerstore/store/store_gc.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/system_prune.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

// A pid that is certainly gone: a child we started and reaped.
pid_t DeadPid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status;
  ::waitpid(pid, &status, 0);
  return pid;
}

class StoreGcTest : public StoreTest {
 protected:
  // Loads an image (tagged or dangling) and returns it.
  TestImage Load(const std::string& name, const std::string& tag) {
    auto img = MakeImage({MakeLayer({{"bin/", ""}, {"bin/sh", std::string(3000, 's')}}),
                          MakeLayer({{name, std::string(7000, 'x')}})},
                         tag.empty() ? std::vector<std::string>{} : std::vector<std::string>{tag});
    WriteOciArchive(Scratch(name + ".tar"), {img});
    auto r = LoadImages(store(), Scratch(name + ".tar"), {});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return img;
  }
  // A blob and its unpacked layer that nothing refers to, as a crashed writer leaves them.
  TestLayer Orphan(const std::string& name) {
    auto layer = MakeLayer({{name, std::string(20000, 'o')}});
    EXPECT_TRUE(BlobStore(store()).PutBytes(layer.blob, layer.digest).ok());
    EXPECT_TRUE(LayerStore(store()).Ensure({{layer.digest, layer.diff_id}}).ok());
    return layer;
  }
};

TEST(IsDeadLitterTest, ReadsThePidFromTheName) {
  EXPECT_FALSE(IsDeadLitter("load-" + std::to_string(::getpid()) + "-3-12345"));
  EXPECT_FALSE(IsDeadLitter("rm-layer-" + std::to_string(::getppid()) + "-0-1"));
  EXPECT_TRUE(IsDeadLitter("load-" + std::to_string(DeadPid()) + "-3-12345"));
  EXPECT_TRUE(IsDeadLitter("blob-dead"));
  EXPECT_TRUE(IsDeadLitter("x-y-z"));
  EXPECT_TRUE(IsDeadLitter("junk"));
}

TEST_F(StoreGcTest, LiveSetHasImagesContainersAndCacheRecords) {
  auto tagged = Load("a", "a:1");
  auto live = ComputeLiveSet(store());
  ASSERT_TRUE(live.ok()) << live.status().message();
  EXPECT_TRUE(live->blobs.count(tagged.manifest_digest));
  EXPECT_TRUE(live->blobs.count(tagged.config_digest));
  EXPECT_TRUE(live->blobs.count(tagged.layers[1].digest));
  EXPECT_TRUE(live->diff_ids.count(tagged.layers[0].diff_id));
  EXPECT_TRUE(live->chains.count(ChainId({tagged.layers[0].diff_id})));
  EXPECT_TRUE(live->chains.count(ChainId({tagged.layers[0].diff_id, tagged.layers[1].diff_id})));
}

TEST_F(StoreGcTest, LiveSetKeepsTheDockerManifestBesideItsOciConversion) {
  auto docker = AsDockerSchema2(MakeImage({MakeLayer({{"f", "x"}})}, {"d:1"}));
  WriteOciArchive(Scratch("d.tar"), {docker});
  ASSERT_TRUE(LoadImages(store(), Scratch("d.tar"), {}).ok());
  auto image = ImageStore(store()).Resolve("d:1");
  ASSERT_TRUE(image.ok());
  auto live = ComputeLiveSet(store());
  ASSERT_TRUE(live.ok()) << live.status().message();
  EXPECT_TRUE(live->blobs.count(image->manifest_digest));
  EXPECT_TRUE(live->blobs.count(docker.manifest_digest));
}

TEST_F(StoreGcTest, SweepRemovesOnlyUnreferencedDataOldEnough) {
  auto img = Load("a", "a:1");
  auto orphan = Orphan("orphan");
  fs::create_directories(store().chain_dir(ChainId({orphan.diff_id})));
  WriteFile(store().chain_dir(ChainId({orphan.diff_id})) / "merged", "index");
  fs::path dead = store().tmp_dir() / ("load-" + std::to_string(DeadPid()) + "-0-1");
  fs::path alive = store().tmp_dir() / ("blob-" + std::to_string(::getpid()) + "-0-1");
  WriteFile(dead, std::string(9000, 'd'));
  WriteFile(alive, "being written");
  auto before = StoreListing(store().root());

  auto young = SweepUnreferenced(store(), std::chrono::seconds(3600));  // all just written: kept
  ASSERT_TRUE(young.ok()) << young.status().message();
  EXPECT_EQ(young->blobs + young->layers + young->chains, 0u);
  EXPECT_EQ(young->tmp_entries, 1u);
  EXPECT_EQ(StoreListing(store().root()), before);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));

  auto swept = SweepUnreferenced(store(), std::chrono::seconds(0));
  ASSERT_TRUE(swept.ok()) << swept.status().message();
  EXPECT_EQ(swept->blobs, 1u);
  EXPECT_EQ(swept->layers, 1u);
  EXPECT_EQ(swept->chains, 1u);
  EXPECT_GT(swept->bytes, 20000u);
  EXPECT_FALSE(BlobStore(store()).Has(orphan.digest));
  EXPECT_FALSE(LayerStore(store()).Has(orphan.diff_id));
  EXPECT_FALSE(fs::exists(store().chain_dir(ChainId({orphan.diff_id}))));
  EXPECT_TRUE(ImageStore(store()).Resolve("a:1").ok());
  for (const auto& l : img.layers) EXPECT_TRUE(LayerStore(store()).Has(l.diff_id));
  EXPECT_TRUE(fs::exists(alive));
  fs::remove(alive);
}

TEST_F(StoreGcTest, OpenRecoversWhatADeadLoadPublishedButNeverRecorded) {
  auto kept = Load("a", "a:1");
  auto before = StoreListing(store().root());
  // The state a load killed between its renames and index.json leaves: published blobs and a
  // layer nothing names, and its staging dir holding the journal.
  auto orphan = Orphan("orphan");
  fs::path staging = store().tmp_dir() / ("load-" + std::to_string(DeadPid()) + "-0-7");
  fs::create_directories(staging / "blobs");
  ASSERT_TRUE(WritePublishJournal(staging, {{orphan.digest, kept.layers[0].digest}, {orphan.diff_id, kept.layers[0].diff_id}}).ok());
  ASSERT_NE(StoreListing(store().root()), before);

  auto reopened = Store::Open(store().root());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(StoreListing(store().root()), before);  // the journal's entries a:1 uses stay
  EXPECT_TRUE(fs::is_empty(store().tmp_dir()));
  EXPECT_TRUE(ImageStore(store()).Resolve("a:1").ok());
}

TEST_F(StoreGcTest, SystemPruneRemovesDanglingImagesAndKeepsContainers) {
  auto tagged = Load("a", "a:1");
  auto dangling = Load("b", "");
  auto used = Load("c", "c:1");
  auto image = ImageStore(store()).Resolve("c:1");
  ASSERT_TRUE(image.ok());
  auto container = ContainerStore(store()).Create(*image, "c:1", "web");
  ASSERT_TRUE(container.ok()) << container.status().message();
  ASSERT_TRUE(ImageStore(store()).Tag("c:1", "c:2").ok());

  auto r = SystemPrune(store(), /*all=*/false, std::chrono::seconds(0));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->images.deleted_images.size(), 1u);
  EXPECT_EQ(r->images.deleted_images[0], dangling.config_digest);
  EXPECT_GT(r->reclaimed, 7000u);
  EXPECT_FALSE(BlobStore(store()).Has(dangling.manifest_digest));
  EXPECT_FALSE(LayerStore(store()).Has(dangling.layers[1].diff_id));
  EXPECT_TRUE(LayerStore(store()).Has(dangling.layers[0].diff_id));  // shared with a:1

  auto all = SystemPrune(store(), /*all=*/true, std::chrono::seconds(0));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_FALSE(ImageStore(store()).Resolve("a:1").ok());
  EXPECT_FALSE(LayerStore(store()).Has(tagged.layers[1].diff_id));
  EXPECT_TRUE(ImageStore(store()).Resolve("c:1").ok());  // a container uses it
  EXPECT_TRUE(ContainerStore(store()).Get("web").ok());
  for (const auto& l : used.layers) EXPECT_TRUE(LayerStore(store()).Has(l.diff_id));
}

TEST_F(StoreGcTest, SystemPruneLeavesContainerdSnapshots) {
  fs::create_directories((store().root() / "snapshots") / "1" / "fs");
  WriteFile((store().root() / "snapshots") / "metadata.json", "{}");
  WriteFile((store().root() / "snapshots") / "1" / "fs" / "f", "data");
  ASSERT_TRUE(SystemPrune(store(), /*all=*/true, std::chrono::seconds(0)).ok());
  EXPECT_EQ(ReadFile((store().root() / "snapshots") / "1" / "fs" / "f"), "data");
  EXPECT_TRUE(fs::exists((store().root() / "snapshots") / "metadata.json"));
}

}  // namespace
}  // namespace layerfs::testing
