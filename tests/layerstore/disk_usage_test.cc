#include "layerstore/disk_usage.h"

#include <gtest/gtest.h>

#include "layerstore/container_store.h"
#include "layerstore/image_load.h"
#include "layerstore/image_store.h"
#include "layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class DiskUsageTest : public StoreTest {};

TEST_F(DiskUsageTest, SharedLayersCountOnceInTheTotal) {
  auto base = MakeLayer({{"bin/", ""}, {"bin/sh", std::string(1000, 's')}, {"bin/ash", "", "sh"}});
  auto a = MakeImage({base, MakeLayer({{"a", std::string(300, 'a')}})}, {"a:1"});
  auto b = MakeImage({base, MakeLayer({{"b", std::string(50, 'b')}})}, {"b:1"});
  ASSERT_EQ(base.content_size, 1002u);
  WriteOciArchive(Scratch("ab.tar"), {a, b});
  ASSERT_TRUE(LoadImages(store(), Scratch("ab.tar"), {}).ok());

  auto r = ComputeDiskUsage(store());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->images_size, 1002u + 300 + 50);
  EXPECT_EQ(r->images_reclaimable, r->images_size);
  ASSERT_EQ(r->images.size(), 2u);
  for (const auto& u : r->images) {
    uint64_t unique = u.image.id() == a.config_digest ? 300 : 50;
    EXPECT_EQ(u.size, 1002u + unique);
    EXPECT_EQ(u.shared_size, 1002u);
    EXPECT_EQ(u.unique_size, unique);
    EXPECT_EQ(u.containers, 0);
  }
  EXPECT_EQ(*LayerSizes(store()).ImageSize(r->images[0].image), r->images[0].size);
}

TEST_F(DiskUsageTest, ContainersMakeImagesActiveAndCountTheirUpperDir) {
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
  EXPECT_EQ(r->containers[0].size, 123u);  // a hard link counts once
  EXPECT_EQ(r->containers_size, 123u);
  EXPECT_EQ(r->containers_reclaimable, 123u);  // not mounted
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
