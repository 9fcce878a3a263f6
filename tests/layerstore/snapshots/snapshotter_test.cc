#include "layerstore/snapshots/snapshotter.h"

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::WriteFile;

class SnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Snapshotter::Open(dir_);
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
  TempDir tmp_;
  fs::path dir_ = tmp_.path() / "snapshots";
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
  EXPECT_EQ(o[2], "lowerdir=" + (dir_ / "empty").string());
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
  EXPECT_EQ(Snapshotter::Open(dir_).status().code(), EBUSY);
}

TEST_F(SnapshotterTest, RestartSweepsWhatACrashLeft) {
  ASSERT_TRUE(sn_->Prepare("default/1/extract-1 sha256:aa", "", {}).ok());
  fs::path kept = Fs("default/1/extract-1 sha256:aa");
  WriteFile(kept / "f", "x");
  sn_.reset();
  // A crash between making a directory and recording it, and one between dropping a record
  // and removing its directory, both leave a numbered directory no record names.
  fs::create_directories(dir_ / "2" / "fs" / "half");
  fs::create_directories(dir_ / "9" / "fs");
  WriteFile(dir_ / "metadata.json.tmp-999999999", "{");
  SetUp();
  EXPECT_FALSE(fs::exists(dir_ / "9"));
  EXPECT_FALSE(fs::exists(dir_ / "2"));
  EXPECT_FALSE(fs::exists(dir_ / "metadata.json.tmp-999999999"));
  EXPECT_TRUE(fs::exists(kept / "f"));
  ASSERT_TRUE(sn_->Prepare("default/3/extract-2 sha256:bb", "", {}).ok());
  EXPECT_TRUE(fs::is_empty(Fs("default/3/extract-2 sha256:bb")));
}

TEST_F(SnapshotterTest, RefusedCallsLeaveNoDirectory) {
  EXPECT_EQ(sn_->Prepare("../../etc", "", {}).status().code(), EINVAL);
  EXPECT_EQ(sn_->Prepare("k", "missing", {}).status().code(), ENOENT);
  EXPECT_EQ(sn_->List({"name=\"x"}).status().code(), EINVAL);
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"empty", "lock"}));
}

}  // namespace
}  // namespace layerfs
