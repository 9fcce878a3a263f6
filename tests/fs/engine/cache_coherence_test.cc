// The kernel keeps layerfs's names, attributes and directory listings for a long time (lower
// and upper alike, ops_dir.cc / node_resolve.cc). These tests fill those caches, change the
// tree through the mount, and then require that another process sees exactly what a fresh
// mount of the same container shows: any cache the daemon forgot to invalidate shows up as a
// difference. `find` (a second process) walks with readdir + lstat, as users do.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "fs/mount/mount.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace stdfs = std::filesystem;
using fstest::DirEntry;
using fstest::FileEntry;
using fstest::HardlinkEntry;
using fstest::LayerSpec;
using fstest::ReadAll;
using fstest::WhiteoutEntry;

// Every entry under root as another process sees it: path, type, mode, nlink, owner, size,
// mtime, ctime, inode, link target; one sorted line each.
std::string Snapshot(const stdfs::path& root) {
  std::string cmd = "cd '" + root.string() + "' && find . -printf '%P|%y|%m|%n|%U|%G|%s|%T@|%C@|%i|%l\\n' | LC_ALL=C sort";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  if (status != 0) out += "find exit status " + std::to_string(status) + "\n";
  return out;
}

// The lines only one side has, for a readable failure.
std::string Differences(const std::string& live, const std::string& fresh) {
  auto lines = [](const std::string& s) {
    std::set<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.insert(l);
    return out;
  };
  std::set<std::string> a = lines(live), b = lines(fresh);
  std::string out;
  for (const auto& l : a)
    if (!b.count(l)) out += "  cached view only: " + l + "\n";
  for (const auto& l : b)
    if (!a.count(l)) out += "  fresh mount only:  " + l + "\n";
  return out;
}

// In another process (ls), the names of dir.
std::set<std::string> ListInChild(const stdfs::path& dir) {
  std::string cmd = "ls -A '" + dir.string() + "'";
  FILE* f = ::popen(cmd.c_str(), "r");
  std::set<std::string> out;
  if (f == nullptr) return out;
  char line[4096];
  while (::fgets(line, sizeof(line), f)) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    out.insert(s);
  }
  ::pclose(f);
  return out;
}

// In another process (stat), "size nlink mode" of path, or "" when it does not exist.
std::string StatInChild(const stdfs::path& path) {
  std::string cmd = "stat -c '%s %h %a' '" + path.string() + "' 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return "popen failed";
  char line[256] = {};
  if (!::fgets(line, sizeof(line), f)) line[0] = '\0';
  ::pclose(f);
  std::string s(line);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void Append(const stdfs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::app);
  out << s;
}

class CacheCoherenceTest : public ::testing::Test {
 protected:
  CacheCoherenceTest() : tmp_("layerfs-cache") {}
  ~CacheCoherenceTest() override { Unmount(); }

  stdfs::path mnt() const { return tmp_.path() / "mnt"; }

  void SetUp() override {
    std::vector<LayerSpec> layers;
    layers.push_back({DirEntry("bin"), FileEntry("bin/sh", "shell", 0755), DirEntry("etc"), FileEntry("etc/passwd", "root"),
                      FileEntry("etc/shadow", "secret", 0640), DirEntry("etc/default"), FileEntry("etc/default/a", "a"), DirEntry("home"),
                      DirEntry("home/redis"), FileEntry("home/redis/data", "0123456789", 0600), FileEntry("hl1", "linked"), HardlinkEntry("hl2", "hl1"),
                      DirEntry("links"), FileEntry("links/x", "x"), HardlinkEntry("links/y", "links/x"), DirEntry("empty"), FileEntry("empty/gone", "g"),
                      DirEntry("movedir"), FileEntry("movedir/c1", "c1"), DirEntry("movedir/sub"), FileEntry("movedir/sub/c2", "c2")});
    layers.push_back({WhiteoutEntry("empty/gone"), FileEntry("etc/hostname", "box"), DirEntry("upperdir")});
    auto store = Store::Open(tmp_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status().message();
    for (auto& spec : layers) {
      auto tar = fstest::BuildLayerTar(spec);
      ASSERT_TRUE(tar.ok()) << tar.status().message();
      auto d = fstest::AddLayer(*store, *tar);
      ASSERT_TRUE(d.ok()) << d.status().message();
      layers_.push_back(*d);
    }
    Mount();
  }

  void Mount() {
    auto m = Mount::Start(fstest::ContainerMountConfig(tmp_.path() / "store", layers_, tmp_.path()));
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(m).value();
  }

  void Unmount() {
    if (!mount_) return;
    Status st = mount_->Unmount();
    EXPECT_TRUE(st.ok()) << st.message();
    mount_.reset();
  }

  // Fills the kernel's caches: every name looked up, every attribute and listing read (twice,
  // so the second walk is served from the caches the first one filled).
  void Prime() {
    Snapshot(mnt());
    primed_ = Snapshot(mnt());
    ASSERT_NE(primed_.find("etc/passwd|f|644"), std::string::npos) << primed_;
  }

  // What another process sees now must be what a fresh mount of the same container shows.
  void ExpectCachedViewIsFresh() {
    std::string live = Snapshot(mnt());
    Unmount();
    Mount();
    std::string fresh = Snapshot(mnt());
    EXPECT_EQ(Differences(live, fresh), "");
    EXPECT_NE(live, primed_) << "the operations changed nothing visible";
  }

  fstest::TempDir tmp_;
  std::vector<Digest> layers_;
  std::unique_ptr<layerfs::Mount> mount_;
  std::string primed_;
};

TEST_F(CacheCoherenceTest, CreateAndDeleteInALowerOnlyDirectory) {
  Prime();
  std::set<std::string> before = ListInChild(mnt() / "etc");
  ASSERT_TRUE(before.count("passwd"));
  ASSERT_EQ(StatInChild(mnt() / "etc/new"), "");  // a negative entry the kernel may keep
  Append(mnt() / "etc/new", "fresh");
  ASSERT_EQ(::unlink((mnt() / "etc/passwd").c_str()), 0);
  ASSERT_EQ(::mkdir((mnt() / "etc/d").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("new", (mnt() / "etc/s").c_str()), 0);
  ASSERT_EQ(::mkfifo((mnt() / "etc/p").c_str(), 0600), 0);
  ASSERT_EQ(::link((mnt() / "etc/new").c_str(), (mnt() / "etc/new2").c_str()), 0);
  ASSERT_EQ(::rmdir((mnt() / "etc/default").c_str()), -1);  // not empty
  ASSERT_EQ(::unlink((mnt() / "etc/default/a").c_str()), 0);
  ASSERT_EQ(::rmdir((mnt() / "etc/default").c_str()), 0);
  std::set<std::string> after = ListInChild(mnt() / "etc");
  EXPECT_EQ(after, (std::set<std::string>{"d", "hostname", "new", "new2", "p", "s", "shadow"}));
  EXPECT_EQ(StatInChild(mnt() / "etc/new"), "5 2 644");
  EXPECT_EQ(StatInChild(mnt() / "etc/passwd"), "");
  ExpectCachedViewIsFresh();
}

TEST_F(CacheCoherenceTest, UpperDirectoryNlinkSizeAndListingFollowChanges) {
  ASSERT_EQ(::mkdir((mnt() / "u").c_str(), 0755), 0);
  for (int i = 0; i < 40; ++i) Append(mnt() / "u" / ("f" + std::to_string(i)), "x");
  Prime();
  EXPECT_EQ(StatInChild(mnt() / "u").substr(StatInChild(mnt() / "u").find(' ')), " 2 755");
  ASSERT_EQ(::mkdir((mnt() / "u/sub").c_str(), 0755), 0);
  EXPECT_EQ(StatInChild(mnt() / "u").substr(StatInChild(mnt() / "u").find(' ')), " 3 755");
  for (int i = 0; i < 40; i += 2) ASSERT_EQ(::unlink((mnt() / "u" / ("f" + std::to_string(i))).c_str()), 0);
  EXPECT_EQ(ListInChild(mnt() / "u").size(), 21u);
  ASSERT_EQ(::chmod((mnt() / "u").c_str(), 0700), 0);
  EXPECT_EQ(StatInChild(mnt() / "u").substr(StatInChild(mnt() / "u").find(' ')), " 3 700");
  ExpectCachedViewIsFresh();
}

TEST_F(CacheCoherenceTest, AttributeChangesOnLowerAndUpperEntries) {
  Prime();
  ASSERT_EQ(::chmod((mnt() / "etc/shadow").c_str(), 0600), 0);
  ASSERT_EQ(::chmod((mnt() / "home").c_str(), 0711), 0);
  struct timespec times[2] = {{1400000000, 0}, {1400000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (mnt() / "bin/sh").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(::truncate((mnt() / "home/redis/data").c_str(), 4), 0);
  ASSERT_EQ(::setxattr((mnt() / "etc/hostname").c_str(), "user.k", "v", 1, 0), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::lchown((mnt() / "bin/sh").c_str(), 7, 8), 0);
  }
  EXPECT_EQ(StatInChild(mnt() / "etc/shadow"), "6 1 600");
  EXPECT_EQ(StatInChild(mnt() / "home/redis/data"), "4 1 600");
  ExpectCachedViewIsFresh();
}

// A write deep in the tree copies up every directory on the way: each now shows nlink 1
// (merged, as overlayfs) and a new ctime, which the kernel had cached from the index.
TEST_F(CacheCoherenceTest, CopyUpOfParentsOnTheWayToAChild) {
  Prime();
  Append(mnt() / "home/redis/data", "+");
  EXPECT_EQ(StatInChild(mnt() / "home/redis/data"), "11 1 600");
  EXPECT_EQ(StatInChild(mnt() / "home/redis"), StatInChild(mnt() / "home/redis").substr(0, StatInChild(mnt() / "home/redis").find(' ')) + " 1 755");
  ExpectCachedViewIsFresh();
}

TEST_F(CacheCoherenceTest, RenamesOfLowerDirectoriesAndFiles) {
  Prime();
  ASSERT_EQ(::rename((mnt() / "movedir").c_str(), (mnt() / "home/moved").c_str()), 0);
  ASSERT_EQ(::rename((mnt() / "etc/hostname").c_str(), (mnt() / "bin/hostname").c_str()), 0);
  ASSERT_EQ(::renameat2(AT_FDCWD, (mnt() / "bin").c_str(), AT_FDCWD, (mnt() / "upperdir").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ListInChild(mnt() / "home"), (std::set<std::string>{"moved", "redis"}));
  EXPECT_EQ(ListInChild(mnt() / "home/moved/sub"), (std::set<std::string>{"c2"}));
  EXPECT_EQ(ListInChild(mnt() / "upperdir"), (std::set<std::string>{"hostname", "sh"}));
  EXPECT_EQ(ListInChild(mnt() / "bin"), (std::set<std::string>{}));
  EXPECT_EQ(ReadAll(mnt() / "upperdir/hostname"), "box");
  EXPECT_EQ(StatInChild(mnt() / "movedir"), "");
  ExpectCachedViewIsFresh();
}

// Lower hard links are separate FUSE inodes that share one file once copied up: a write or an
// unlink through one name must show through the other's attributes at once.
TEST_F(CacheCoherenceTest, HardLinkGroupCopyUpSeenThroughTheOtherLink) {
  Prime();
  std::string hl2_before = StatInChild(mnt() / "hl2");
  Append(mnt() / "hl1", "+more");
  EXPECT_EQ(StatInChild(mnt() / "hl2"), "11" + hl2_before.substr(hl2_before.find(' ')));
  EXPECT_EQ(ReadAll(mnt() / "hl2"), "linked+more");
  struct stat a {
  }, b{};
  ASSERT_EQ(::lstat((mnt() / "hl1").c_str(), &a), 0);
  ASSERT_EQ(::lstat((mnt() / "hl2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(::unlink((mnt() / "links/x").c_str()), 0);  // group copy-up, then one name less
  EXPECT_EQ(StatInChild(mnt() / "links/y"), "1 1 644");
  ExpectCachedViewIsFresh();
}

// No handle is kept between READDIRs: offsets must stay meaningful while the directory
// changes, so an entry that did not change is listed exactly once by a reader in progress.
TEST_F(CacheCoherenceTest, ReaderInProgressSeesUnchangedEntriesExactlyOnce) {
  for (int i = 0; i < 300; ++i) Append(mnt() / "etc" / ("u" + std::to_string(i)), "x");
  std::set<std::string> initial = ListInChild(mnt() / "etc");
  DIR* d = ::opendir((mnt() / "etc").c_str());
  ASSERT_NE(d, nullptr);
  std::multiset<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    struct dirent* e = ::readdir(d);
    ASSERT_NE(e, nullptr);
    seen.insert(e->d_name);
  }
  std::set<std::string> removed;
  for (int i = 0; i < 300; i += 7) {
    std::string n = "u" + std::to_string(i);
    ASSERT_EQ(::unlink((mnt() / "etc" / n).c_str()), 0);
    removed.insert(n);
  }
  ASSERT_EQ(::unlink((mnt() / "etc/passwd").c_str()), 0);
  removed.insert("passwd");
  for (int i = 0; i < 200; ++i) Append(mnt() / "etc" / ("v" + std::to_string(i)), "y");
  while (struct dirent* e = ::readdir(d)) seen.insert(e->d_name);
  ::closedir(d);
  for (const auto& n : initial) {
    if (removed.count(n)) continue;
    EXPECT_EQ(seen.count(n), 1u) << n;
  }
  for (const auto& n : seen) EXPECT_EQ(seen.count(n), 1u) << n << " listed twice";
}

}  // namespace
}  // namespace layerfs
