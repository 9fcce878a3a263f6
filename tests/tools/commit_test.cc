// `layerfs diff` and `layerfs commit` through the real binary on a temp store: a container of a
// two-layer image gets an added, a changed, a deleted file, a replaced lower dir (opaque) and a
// renamed lower dir; diff must list them like docker; commit (while mounted) then mounting the
// new image must show exactly the container's tree, share both lower layers, and carry the
// deletion and the replaced dir as a whiteout and an opaque marker.
#include <archive.h>
#include <archive_entry.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/fs/tree_snapshot.h"
#include "tests/tools/shell_command.h"
#include "tests/tools/test_images.h"

namespace layerfs {
namespace {

namespace fs = std::filesystem;
using testing::MakeImage;
using testing::MakeLayer;

int RunLayerfs(const std::vector<std::string>& args, std::string* out) {
  std::string cmd = LAYERFS_BINARY;
  for (const auto& a : args) cmd += " " + testing::ShellQuote(a);
  testing::ShellResult r = testing::RunShellCommand(cmd + " 2>&1");
  *out = r.out;
  return r.code;
}

// Entry names of every gzip tar blob in the store.
std::vector<std::set<std::string>> LayerEntryNames(const fs::path& blobs) {
  std::vector<std::set<std::string>> out;
  for (const auto& blob : fs::directory_iterator(blobs)) {
    archive* a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    std::set<std::string> names;
    if (archive_read_open_filename(a, blob.path().c_str(), 1 << 16) == ARCHIVE_OK) {
      archive_entry* e;
      while (archive_read_next_header(a, &e) == ARCHIVE_OK) names.insert(archive_entry_pathname(e));
    }
    archive_read_free(a);
    if (!names.empty()) out.push_back(names);
  }
  return out;
}

class CommitCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    root_ = tmp_.path() / "store";
    for (const auto& d : {mnt_, mnt2_}) fs::create_directories(d);
    auto base = MakeLayer({{"etc/"}, {"etc/hosts", "127.0.0.1 localhost\n"}, {"etc/passwd", "root:x:0:0\n"}, {"bin/"}, {"bin/sh", "#!sh", "", 0755}, {"lib/"}, {"lib/a", "A"}, {"lib/sub/"}, {"lib/sub/b", "B"}, {"data/"}, {"data/x", "X"}, {"data/link", "", "x"}});
    auto top = MakeLayer({{"etc/"}, {"etc/hosts", "10.0.0.1 db\n"}, {"usr/"}, {"usr/y", "Y"}});
    fs::path layout = tmp_.path() / "layout";
    testing::WriteOciLayout(layout, {MakeImage({base, top}, {"base:1"})});
    ASSERT_EQ(RunLayerfs({"--root", root_, "load", "-i", layout.string()}, &out_), 0) << out_;
  }
  void TearDown() override {
    for (const auto& d : {mnt_, mnt2_}) {
      RunLayerfs({"--root", root_, "umount", d.string()}, &out_);
      umount2(d.c_str(), MNT_DETACH);  // last resort; a no-op when the CLI unmounted
    }
  }
  std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

  testing::TempDir tmp_;
  fs::path root_, mnt_ = tmp_.path() / "mnt", mnt2_ = tmp_.path() / "mnt2";
  std::string out_;
};

// `layerfs stats`: a container's requests by operation, as a table or JSON; a directory that
// is no layerfs mount is one error line.
TEST_F(CommitCli, StatsShowsTheRequestsOfAMountedContainer) {
  ASSERT_EQ(RunLayerfs({"--root", root_, "mount", "--name", "c1", "base:1", mnt_.string()}, &out_), 0) << out_;
  std::string hosts;
  std::getline(std::ifstream(mnt_ / "etc/hosts"), hosts);
  ASSERT_EQ(hosts, "10.0.0.1 db");
  ASSERT_EQ(RunLayerfs({"stats", mnt_.string()}, &out_), 0) << out_;
  EXPECT_EQ(out_.rfind("OPERATION", 0), 0u) << out_;
  EXPECT_NE(out_.find("\nOPEN "), std::string::npos) << out_;
  EXPECT_NE(out_.find("\nTOTAL "), std::string::npos) << out_;
  ASSERT_EQ(RunLayerfs({"stats", "--format", "json", mnt_.string()}, &out_), 0) << out_;
  EXPECT_NE(out_.find("\"OPEN\":1,"), std::string::npos) << out_;
  EXPECT_EQ(RunLayerfs({"stats", tmp_.path().string()}, &out_), 1);
  EXPECT_EQ(Lines(out_).size(), 1u) << out_;
}

TEST_F(CommitCli, DiffAndCommitShowWhatTheContainerShowed) {
  ASSERT_EQ(RunLayerfs({"--root", root_, "mount", "--name", "c1", "base:1", mnt_.string()}, &out_), 0) << out_;
  std::ofstream(mnt_ / "etc/new") << "new\n";
  std::ofstream(mnt_ / "etc/hosts", std::ios::app) << "10.0.0.2 cache\n";
  fs::remove(mnt_ / "bin/sh");
  fs::remove_all(mnt_ / "lib");
  fs::create_directory(mnt_ / "lib");
  std::ofstream(mnt_ / "lib/z") << "Z";
  fs::rename(mnt_ / "data", mnt_ / "data2");

  ASSERT_EQ(RunLayerfs({"--root", root_, "diff", "c1"}, &out_), 0) << out_;
  std::vector<std::string> want = {"C /bin", "D /bin/sh", "D /data", "A /data2", "A /data2/link", "A /data2/x",
                                   "C /etc", "C /etc/hosts", "A /etc/new", "C /lib", "D /lib/a", "D /lib/sub",
                                   "A /lib/z"};
  EXPECT_EQ(Lines(out_), want) << out_;

  std::string errors;
  fstest::Tree container = fstest::SnapshotTree(mnt_, &errors);
  ASSERT_EQ(errors, "");
  size_t layers_before = std::distance(fs::directory_iterator(root_ / "layers"), fs::directory_iterator());
  ASSERT_EQ(RunLayerfs({"--root", root_, "commit", "-m", "my change", "-a", "me", "c1", "committed:1"}, &out_), 0) << out_;
  EXPECT_TRUE(out_.starts_with("sha256:")) << out_;
  size_t layers_after = std::distance(fs::directory_iterator(root_ / "layers"), fs::directory_iterator());
  EXPECT_EQ(layers_after, layers_before + 1) << "the new image shares every lower layer";

  ASSERT_EQ(RunLayerfs({"--root", root_, "mount", "--name", "c2", "committed:1", mnt2_.string()}, &out_), 0) << out_;
  fstest::Tree image = fstest::SnapshotTree(mnt2_, &errors);
  ASSERT_EQ(errors, "");
  fstest::CompareOptions opt;
  opt.compare_ino_identity = false;  // two mounts, two inode spaces
  opt.merged_dir_nlink_one = true;   // like overlayfs, a merged dir (here the renamed data2) says 1
  for (const auto& d : fstest::CompareTrees(container, image, opt)) ADD_FAILURE() << "committed image: " << d;

  bool whiteout = false, opaque = false;
  for (const auto& names : LayerEntryNames(root_ / "blobs" / "sha256")) {
    whiteout |= names.count("bin/.wh.sh") > 0;
    opaque |= names.count("lib/.wh..wh..opq") > 0;
  }
  EXPECT_TRUE(whiteout) << "bin/sh deletion must be a whiteout in the new layer";
  EXPECT_TRUE(opaque) << "the replaced lib/ must be opaque in the new layer";

  ASSERT_EQ(RunLayerfs({"--root", root_, "history", "committed:1"}, &out_), 0) << out_;
  EXPECT_NE(out_.find("layerfs commit"), std::string::npos) << out_;
}

TEST_F(CommitCli, UnknownContainerIsOneClearLine) {
  EXPECT_EQ(RunLayerfs({"--root", root_, "commit", "nosuch", "x:1"}, &out_), 1);
  EXPECT_EQ(Lines(out_).size(), 1u) << out_;
  EXPECT_EQ(RunLayerfs({"--root", root_, "diff", "nosuch"}, &out_), 1);
  EXPECT_EQ(Lines(out_).size(), 1u) << out_;
}

// `-o threads=` takes a number and nothing else: one line, exit 1, nothing mounted or recorded.
TEST_F(CommitCli, MountRefusesAThreadCountThatIsNoNumber) {
  for (const char* bad : {"threads=", "threads=four", "threads=8x", "threads=-1"}) {
    EXPECT_EQ(RunLayerfs({"--root", root_, "mount", "-o", bad, "base:1", mnt_.string()}, &out_), 1) << bad;
    EXPECT_EQ(Lines(out_).size(), 1u) << out_;
    EXPECT_NE(out_.find("not a number of threads"), std::string::npos) << out_;
  }
  ASSERT_EQ(RunLayerfs({"--root", root_, "ps", "-a", "-q"}, &out_), 0) << out_;
  EXPECT_EQ(out_, "") << "a refused mount left a container record";
  ASSERT_EQ(RunLayerfs({"--root", root_, "mount", "-o", "threads=2", "base:1", mnt_.string()}, &out_), 0) << out_;
  EXPECT_TRUE(fs::exists(mnt_ / "etc/hosts"));
}

}  // namespace
}  // namespace layerfs
