#include "layerstore/store/disk_usage.h"

#include <charconv>
#include <cstdio>
#include <cstring>

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/store_gc.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class DiskUsageTest : public StoreTest {
 protected:
  uint64_t Bytes(const fs::path& p) {
    std::set<std::pair<dev_t, ino_t>> seen;
    return AllocatedBytes(p, &seen);
  }
  // `du -s --block-size=1` of the store, run for real.
  uint64_t Du() {
    std::string cmd = "du -s --block-size=1 '" + store().root().string() + "'";
    FILE* p = ::popen(cmd.c_str(), "r");
    char line[64] = {};
    EXPECT_NE(std::fgets(line, sizeof line, p), nullptr);
    ::pclose(p);
    uint64_t bytes = 0;
    EXPECT_EQ(std::from_chars(line, line + std::strlen(line), bytes).ec, std::errc()) << line;
    return bytes;
  }
};

TEST_F(DiskUsageTest, SharedLayersCountOnceAndTheRowsAddUpToDu) {
  auto base = MakeLayer({{"bin/", ""}, {"bin/sh", std::string(100000, 's')}, {"bin/ash", "", "sh"}});
  auto a = MakeImage({base, MakeLayer({{"a", std::string(300, 'a')}})}, {"a:1"});
  auto b = MakeImage({base, MakeLayer({{"b", std::string(50, 'b')}})}, {"b:1"});
  WriteOciArchive(Scratch("ab.tar"), {a, b});
  ASSERT_TRUE(LoadImages(store(), Scratch("ab.tar"), {}).ok());

  auto r = ComputeDiskUsage(store());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->store_total, Du());
  EXPECT_EQ(r->images_size + r->containers_size + r->build_cache_size, r->store_total);
  // Shared: the base layer's blob and unpacked dir (no merged index yet: nothing was mounted).
  uint64_t shared = Bytes(store().blob_path(base.digest)) + Bytes(store().layer_dir(base.diff_id));
  EXPECT_GT(shared, 100000u);
  ASSERT_EQ(r->images.size(), 2u);
  for (const auto& u : r->images) {
    const TestImage& img = u.image.id() == a.config_digest ? a : b;
    uint64_t own = Bytes(store().blob_path(img.manifest_digest)) + Bytes(store().blob_path(img.config_digest)) +
                   Bytes(store().blob_path(img.layers[1].digest)) + Bytes(store().layer_dir(img.layers[1].diff_id));
    EXPECT_EQ(u.shared_size, shared);
    EXPECT_EQ(u.unique_size, own);
    EXPECT_EQ(u.size, shared + own);
    EXPECT_EQ(u.content_size, base.content_size + img.layers[1].content_size);
    EXPECT_EQ(u.containers, 0);
  }
  // The whole store minus the layout itself is reclaimable: no container uses either image.
  EXPECT_LT(r->images_reclaimable, r->images_size);
  EXPECT_GE(r->images_reclaimable, r->images[0].size + r->images[1].unique_size);
  ASSERT_EQ(r->layers.size(), 3u);
  for (const auto& l : r->layers) {
    EXPECT_EQ(l.images, l.diff_id == base.diff_id ? 2 : 1);
    EXPECT_EQ(l.blob_size, Bytes(store().blob_path(l.blob)));
    EXPECT_EQ(l.unpacked_size, Bytes(store().layer_dir(l.diff_id)));
  }
  EXPECT_EQ(*LayerSizes(store()).ImageSize(r->images[0].image), r->images[0].content_size);
}

TEST_F(DiskUsageTest, ContainersMakeImagesActiveAndCountTheirDirectory) {
  auto img = MakeImage({MakeLayer({{"f", std::string(400, 'f')}})}, {"x:1"});
  WriteOciArchive(Scratch("x.tar"), {img});
  ASSERT_TRUE(LoadImages(store(), Scratch("x.tar"), {}).ok());
  ContainerStore containers(store());
  auto c = containers.Create(*ImageStore(store()).Resolve("x:1"), "x:1", "c1");
  ASSERT_TRUE(c.ok()) << c.status().message();
  fs::create_directories(containers.upper_dir(c->id) / "d");
  WriteFile(containers.upper_dir(c->id) / "d/new", std::string(123, 'n'));
  ::link((containers.upper_dir(c->id) / "d/new").c_str(), (containers.upper_dir(c->id) / "again").c_str());
  auto r = ComputeDiskUsage(store());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->images_active, 1u);
  EXPECT_EQ(r->images_reclaimable, 0u);
  EXPECT_EQ(r->images[0].containers, 1);
  ASSERT_EQ(r->containers.size(), 1u);
  EXPECT_EQ(r->containers[0].size, Bytes(containers.dir(c->id)));  // a hard link counts once
  EXPECT_EQ(r->containers_size, r->containers[0].size);
  EXPECT_EQ(r->containers_reclaimable, r->containers_size);  // not mounted
  EXPECT_EQ(r->store_total, Du());
}

TEST_F(DiskUsageTest, UnreferencedLeftoversAreReclaimableImageSpace) {
  auto img = MakeImage({MakeLayer({{"f", std::string(400, 'f')}})}, {"x:1"});
  WriteOciArchive(Scratch("x.tar"), {img});
  ASSERT_TRUE(LoadImages(store(), Scratch("x.tar"), {}).ok());
  auto before = ComputeDiskUsage(store());
  ASSERT_TRUE(before.ok());
  WriteFile(store().blob_path(Sha256Of("left by a crash")), "left by a crash");
  auto after = ComputeDiskUsage(store());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->store_total, Du());
  EXPECT_EQ(after->images_size - before->images_size, Bytes(store().blob_path(Sha256Of("left by a crash"))));
  EXPECT_EQ(after->images_reclaimable - before->images_reclaimable, after->images_size - before->images_size);
}

TEST_F(DiskUsageTest, ContainerdSnapshotsCountWithImagesAndAreNotReclaimable) {
  auto before = ComputeDiskUsage(store());
  ASSERT_TRUE(before.ok());
  fs::create_directories((store().root() / "snapshots") / "1" / "fs");
  WriteFile((store().root() / "snapshots") / "1" / "fs" / "f", std::string(100000, 'f'));
  auto after = ComputeDiskUsage(store());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->store_total, Du());
  EXPECT_EQ(after->images_size - before->images_size, Bytes((store().root() / "snapshots")));
  EXPECT_EQ(after->images_reclaimable, before->images_reclaimable);
}

TEST(TreeContentSize, CountsFilesAndSymlinksNotDirectories) {
  TempDir dir;
  fs::create_directories(dir.path() / "a/b");
  WriteFile(dir.path() / "a/b/f", "12345");
  fs::create_symlink("f", dir.path() / "a/b/l");
  EXPECT_EQ(TreeContentSize(dir.path()), 6u);
  EXPECT_EQ(TreeContentSize(dir.path() / "missing"), 0u);
}

}  // namespace
}  // namespace layerfs::testing
