#include "layerstore/snapshots/snapshotter.h"

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/image_gc.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/store_gc.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class SnapshotterTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    OpenSnapshotter();
  }
  void OpenSnapshotter() {
    auto s = Snapshotter::Open(store());
    ASSERT_TRUE(s.ok()) << s.status().message();
    sn_ = std::move(*s);
  }
  fs::path Fs(const std::string& key) {
    auto mounts = sn_->Mounts(key);
    EXPECT_TRUE(mounts.ok()) << mounts.status().message();
    if (!mounts.ok()) return {};
    std::string all;
    for (const auto& o : mounts->front().options) all += o + ",";
    size_t at = all.find("upperdir=");
    return all.substr(at + 9, all.find(',', at) - at - 9);
  }
  fs::path snap_dir_ = Scratch("store") / "snapshots";
  std::unique_ptr<Snapshotter> sn_;
};

TEST_F(SnapshotterTest, UnpackThenContainerMounts) {
  auto unpack = sn_->Prepare("default/1/extract-1-x sha256:aa", "", {});
  ASSERT_TRUE(unpack.ok()) << unpack.status().message();
  ASSERT_EQ(unpack->size(), 1u);
  // containerd's applier writes an "overlay" mount's upperdir directly
  EXPECT_EQ(unpack->front().type, "overlay");
  const auto& o = unpack->front().options;
  ASSERT_EQ(o.size(), 3u);
  fs::path upper = o[1].substr(9);
  EXPECT_EQ(o[2], "lowerdir=" + (snap_dir_ / "empty").string());
  WriteFile(upper / "file", std::string(10000, 'x'));
  ASSERT_TRUE(sn_->Commit("default/2/sha256:aa", "default/1/extract-1-x sha256:aa", {}).ok());

  auto run = sn_->Prepare("default/3/ctr", "default/2/sha256:aa", {{"containerd.io/gc.root", "x"}});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->front().type, "fuse3.layerfs-overlay");
  EXPECT_EQ(run->front().options.front().rfind("lowerdir=" + upper.string() + ",upperdir=", 0), 0u)
      << run->front().options.front();
  auto view = sn_->View("default/4/view", "default/2/sha256:aa", {});
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->front().options, std::vector<std::string>{"lowerdir=" + upper.string()});
  EXPECT_EQ(sn_->Mounts("default/2/sha256:aa").status().code(), EBUSY);

  auto usage = sn_->Usage("default/2/sha256:aa");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->inodes, 2);  // the fs dir and the file
  EXPECT_GE(usage->size, 10000);
  EXPECT_EQ(sn_->Usage("default/3/ctr")->inodes, 1);

  EXPECT_EQ(sn_->Remove("default/2/sha256:aa").code(), EBUSY);
  ASSERT_TRUE(sn_->Remove("default/3/ctr").ok());
  ASSERT_TRUE(sn_->Remove("default/4/view").ok());
  ASSERT_TRUE(sn_->Remove("default/2/sha256:aa").ok());
  EXPECT_FALSE(fs::exists(upper));
  EXPECT_TRUE(sn_->List({})->empty());
}

TEST_F(SnapshotterTest, OneSnapshotterPerDirectory) {
  EXPECT_EQ(Snapshotter::Open(store()).status().code(), EBUSY);
}

TEST_F(SnapshotterTest, RestartSweepsWhatACrashLeft) {
  ASSERT_TRUE(sn_->Prepare("default/1/extract-1 sha256:aa", "", {}).ok());
  fs::path kept = Fs("default/1/extract-1 sha256:aa");
  WriteFile(kept / "f", "x");
  sn_.reset();
  // A crash between making a directory and recording it, and one between dropping a record
  // and removing its directory, both leave a numbered directory no record names.
  fs::create_directories(snap_dir_ / "2" / "fs" / "half");
  fs::create_directories(snap_dir_ / "9" / "fs");
  WriteFile(snap_dir_ / "metadata.json.tmp-999999999", "{");
  OpenSnapshotter();
  EXPECT_FALSE(fs::exists(snap_dir_ / "9"));
  EXPECT_FALSE(fs::exists(snap_dir_ / "2"));
  EXPECT_FALSE(fs::exists(snap_dir_ / "metadata.json.tmp-999999999"));
  EXPECT_TRUE(fs::exists(kept / "f"));
  ASSERT_TRUE(sn_->Prepare("default/3/extract-2 sha256:bb", "", {}).ok());
  EXPECT_TRUE(fs::is_empty(Fs("default/3/extract-2 sha256:bb")));
}

TEST_F(SnapshotterTest, RefusedCallsLeaveNoDirectory) {
  EXPECT_EQ(sn_->Prepare("../../etc", "", {}).status().code(), EINVAL);
  EXPECT_EQ(sn_->Prepare("k", "missing", {}).status().code(), ENOENT);
  EXPECT_EQ(sn_->List({"name=\"x"}).status().code(), EINVAL);
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(snap_dir_)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"empty", "lock"}));
}

// containerd's unpacker on an image `layerfs load` put in the store: each layer's Prepare
// carries the chain ID it would commit, and the store layer is taken instead of an unpack.
class StoreLayerTest : public SnapshotterTest {
 protected:
  void SetUp() override {
    SnapshotterTest::SetUp();
    base_ = MakeLayer({{"etc/"}, {"etc/old", "gone"}, {"bin/sh", "shell"}});
    top_ = MakeLayer({{"etc/.wh.old", ""}, {"app", "app"}});
    image_ = MakeImage({base_, top_}, {"app:1"});
    WriteOciArchive(Scratch("app.tar"), {image_});
    ASSERT_TRUE(LoadImages(store(), Scratch("app.tar"), {}).ok());
    chain1_ = ChainId({base_.diff_id}).str();
    chain2_ = ChainId({base_.diff_id, top_.diff_id}).str();
  }
  Status Unpack(const std::string& n, const std::string& chain, const std::string& parent) {
    return sn_->Prepare("default/" + n + "/extract-" + n + " " + chain, parent, {{Snapshotter::kTargetLabel, chain}})
        .status();
  }
  TestLayer base_, top_;
  TestImage image_;
  std::string chain1_, chain2_;
};

TEST_F(StoreLayerTest, AStoreLayerIsTakenNotUnpacked) {
  EXPECT_EQ(Unpack("1", chain1_, "").code(), EEXIST);
  EXPECT_EQ(Unpack("2", chain2_, chain1_).code(), EEXIST);
  EXPECT_EQ(Unpack("3", chain2_, chain1_).code(), EEXIST);  // asked again: the same snapshot
  auto all = sn_->List({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  auto top = sn_->List({"labels.\"containerd.io/snapshot.ref\"==" + chain2_ + ",parent==" + chain1_});
  ASSERT_TRUE(top.ok());
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ(top->front().kind, SnapshotKind::kCommitted);
  EXPECT_EQ(top->front().labels.at("containerd.io/snapshot/layerfs.layer"), top_.diff_id.str());

  auto run = sn_->Prepare("default/4/ctr", top->front().name, {});
  ASSERT_TRUE(run.ok()) << run.status().message();
  std::string lowers = store().layer_tree(top_.diff_id).string() + ":" + store().layer_tree(base_.diff_id).string();
  EXPECT_EQ(run->front().options.front().rfind("lowerdir=" + lowers + ",store=" + store().root().string() + ",upperdir=", 0), 0u)
      << run->front().options.front();
  EXPECT_GE(sn_->Usage(chain1_)->size, 4096);  // the store layer's own blocks
  EXPECT_TRUE(fs::is_empty(snap_dir_ / "empty"));
}

TEST_F(StoreLayerTest, HeldLayersOutliveTheImageUntilTheSnapshotGoes) {
  ASSERT_EQ(Unpack("1", chain1_, "").code(), EEXIST);
  ASSERT_EQ(Unpack("2", chain2_, chain1_).code(), EEXIST);
  ASSERT_TRUE(RemoveImage(store(), "app:1", false).ok());
  LayerStore layers(store());
  EXPECT_TRUE(layers.Has(base_.diff_id));
  EXPECT_TRUE(layers.Has(top_.diff_id));
  {
    auto lock = store().LockExclusive();
    ASSERT_TRUE(SweepUnreferenced(store(), std::chrono::seconds(0)).ok());
  }
  EXPECT_TRUE(layers.Has(top_.diff_id));
  ASSERT_TRUE(sn_->Remove(chain2_).ok());
  ASSERT_TRUE(sn_->Remove(chain1_).ok());
  auto lock = store().LockExclusive();
  ASSERT_TRUE(SweepUnreferenced(store(), std::chrono::seconds(0)).ok());
  EXPECT_FALSE(layers.Has(base_.diff_id));
  EXPECT_FALSE(layers.Has(top_.diff_id));
}

TEST_F(StoreLayerTest, WhatTheStoreLacksIsUnpacked) {
  // A chain no store image has, and the store's top layer on a parent of another chain.
  ASSERT_TRUE(Unpack("1", ChainId({top_.diff_id}).str(), "").ok());
  ASSERT_TRUE(sn_->Commit("default/2/x", "default/1/extract-1 " + ChainId({top_.diff_id}).str(),
                          {{Snapshotter::kTargetLabel, ChainId({top_.diff_id}).str()}})
                  .ok());
  EXPECT_TRUE(Unpack("3", chain2_, "default/2/x").ok());
  EXPECT_EQ(sn_->List({"kind==committed"})->size(), 1u);
}

}  // namespace
}  // namespace layerfs::testing
