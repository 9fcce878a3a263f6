// Layer rotation: a `layerfs overlay` mount's upper, once unmounted, becomes the top lower of the
// next mount (with a fresh upper) and the view must not change, round after round. Each mount
// is also compared with kernel overlayfs reading the same stack of directories (read-only): the
// uppers layerfs wrote are plain overlay layers.
//
// Env: LAYERFS_ROTATION_ROUNDS (default 20), LAYERFS_ROTATION_OPS (ops per round, default 25).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 20; ++i) out += "  " + lines[i] + "\n";
  return out;
}

// What survives rotation: everything but st_ino values (a new layer stack numbers inodes anew;
// which paths share an inode is still compared) and the nlink of merged directories.
CompareOptions RotationCompare() {
  CompareOptions opt;
  opt.merged_dir_nlink_one = true;
  opt.nlink_counts_visible_links = true;
  return opt;
}

// A directory layerfs copied up only to hold hard links shows as its lower one (nlink
// 2 + subdirs, docs/upper-format.md "links_only"); once the upper is a lower, that directory
// spans two layers and shows 1, as overlayfs shows any merged directory. Not a change of the
// tree: such directories take the merged count on both sides.
void MergedDirsAsMerged(const Tree& after, Tree* before) {
  for (auto& [path, node] : *before) {
    auto it = after.find(path);
    if (S_ISDIR(node.mode) && it != after.end() && S_ISDIR(it->second.mode) && it->second.nlink == 1) node.nlink = 1;
  }
}

Tree Snapshot(const fs::path& mnt) {
  std::string errors;
  Tree tree = SnapshotTree(mnt, &errors);
  EXPECT_TRUE(errors.empty()) << errors;
  return tree;
}

class OverlayRotation : public ::testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "lowers with 0/0 whiteouts and kernel overlayfs need root";
  }
};

// A new upper's root takes the owner, mode, times and user xattrs of the layer below, as
// containers/storage makes a new layer's diff dir: the merged root is the upper's.
void CopyRootMetadata(const fs::path& from, const fs::path& to) {
  struct stat st;
  ASSERT_EQ(lstat(from.c_str(), &st), 0);
  ASSERT_EQ(chown(to.c_str(), st.st_uid, st.st_gid), 0);
  ASSERT_EQ(chmod(to.c_str(), st.st_mode & 07777), 0);
  std::string error;
  for (const auto& [name, value] : tree_detail::UserXattrs(from.string(), &error))
    ASSERT_EQ(lsetxattr(to.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << name;
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
}

// Kernel overlayfs, read-only on the same stack (top first).
Tree KernelView(const std::vector<fs::path>& lowers, const fs::path& mnt) {
  std::string opts = "lowerdir=";
  for (auto it = lowers.rbegin(); it != lowers.rend(); ++it) opts += (it == lowers.rbegin() ? "" : ":") + it->string();
  if (mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, (opts + ",redirect_dir=nofollow").c_str()) != 0) {
    ADD_FAILURE() << "kernel overlayfs: " << strerror(errno);
    return {};
  }
  Tree tree = Snapshot(mnt);
  umount2(mnt.c_str(), MNT_DETACH);
  return tree;
}

TEST_P(OverlayRotation, UpperBecomesTopLowerAndTheViewStays) {
  const uint64_t seed = GetParam();
  TempDir tmp("layerfs-rotation");
  std::vector<LayerSpec> layers = RandomLayers(seed);
  std::vector<fs::path> lowers;
  for (size_t i = 0; i < layers.size(); ++i) {
    lowers.push_back(tmp.path() / ("lower" + std::to_string(i)));
    ASSERT_TRUE(WriteOverlayLower(layers[i], lowers.back()).ok());
  }
  fs::path mnt = tmp.path() / "mnt", kmnt = tmp.path() / "kernel-mnt";
  fs::create_directories(mnt);
  fs::create_directories(kmnt);
  std::vector<std::string> pool = PathsOf(layers);
  const int rounds = EnvInt("LAYERFS_ROTATION_ROUNDS", 20), ops_per_round = EnvInt("LAYERFS_ROTATION_OPS", 25);
  Tree expected;  // the view at the end of the previous round
  for (int round = 0; round <= rounds; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    fs::path upper = tmp.path() / ("upper" + std::to_string(round)), work = tmp.path() / "work";
    fs::create_directories(upper);
    fs::create_directories(work);
    CopyRootMetadata(lowers.back(), upper);
    auto overlay = MountLayerfsOverlay(lowers, upper, work, mnt);
    ASSERT_TRUE(overlay.ok()) << overlay.status().message();
    Tree start = Snapshot(mnt);
    if (round > 0) {
      MergedDirsAsMerged(start, &expected);
      auto diffs = CompareTrees(expected, start, RotationCompare());
      ASSERT_TRUE(diffs.empty()) << "view changed when the upper became a lower:\n"
                                 << Lines(diffs);
    }
    if (lowers.size() >= 2) {  // kernel overlayfs mounts one lower only with an upper
      CompareOptions opt = RotationCompare();
      opt.compare_ino_identity = false;  // overlayfs without index: lower hard links keep their own st_ino
      auto diffs = CompareTrees(KernelView(lowers, kmnt), start, opt);
      ASSERT_TRUE(diffs.empty()) << "kernel overlayfs reads the stack differently (expected = kernel):\n"
                                 << Lines(diffs);
    }
    if (round == rounds) break;
    for (const Op& op : RandomOps(seed * 1000 + round, ops_per_round, pool)) {
      ApplyOp(mnt, op);
      if (!op.b.empty()) pool.push_back(op.b);
    }
    expected = Snapshot(mnt);
    ASSERT_TRUE((*overlay)->Unmount().ok());
    fs::remove_all(work);
    lowers.push_back(upper);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, OverlayRotation, ::testing::Range(uint64_t{1}, uint64_t{7}));

}  // namespace
}  // namespace layerfs::fstest
