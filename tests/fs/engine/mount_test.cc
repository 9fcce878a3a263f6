// Real FUSE mounts through fs/mount/mount.h (Mount::Start) on layers built as tars and unpacked into
// a temp store: every POSIX operation of issue 3 on lower and upper entries, copy-up races,
// st_ino stability, hard links, whiteouts/opaque dirs, renames, xattrs, locks, readdir offsets,
// mmap. Every mount is unmounted in the fixture's teardown.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fs/mount/fuse_mount.h"
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
using fstest::Lstat;
using fstest::ReadAll;
using fstest::SymlinkEntry;
using fstest::WhiteoutEntry;
using fstest::WriteAll;

std::set<std::string> List(const stdfs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : stdfs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

class MountTest : public ::testing::Test {
 protected:
  MountTest() : tmp_("layerfs-mount") {}
  ~MountTest() override { Unmount(); }

  stdfs::path mnt() const { return tmp_.path() / "mnt"; }
  stdfs::path upper() const { return tmp_.path() / "upper"; }

  // The standard image: two layers exercising whiteouts, opaque dirs, links and owners.
  void SetUpLayers(std::vector<LayerSpec> layers = {}) {
    if (layers.empty()) {
      layers.push_back({DirEntry("bin"), FileEntry("bin/sh", "shell", 0755), DirEntry("etc"), FileEntry("etc/passwd", "root:x:0:0", 0644),
                        FileEntry("etc/shadow", "secret", 0640, 0, 42), DirEntry("home", 0755), DirEntry("home/redis", 0750),
                        FileEntry("home/redis/data", "0123456789", 0600, 999, 999), DirEntry("gone"), FileEntry("gone/a", "a"),
                        DirEntry("replaced"), FileEntry("replaced/old", "old"), FileEntry("hl1", "linked"), HardlinkEntry("hl2", "hl1"),
                        SymlinkEntry("link", "bin/sh"), DirEntry("empty"), FileEntry("empty/x", "x"), DirEntry("movedir"), FileEntry("movedir/c1", "c1"),
                        DirEntry("movedir/sub"), FileEntry("movedir/sub/c2", "c2")});
      layers.push_back({WhiteoutEntry("gone"), DirEntry("replaced", 0755, true), FileEntry("replaced/new", "new"), DirEntry("empty"), WhiteoutEntry("empty/x"),
                        FileEntry("etc/hostname", "box")});
    }
    for (auto& spec : layers) {
      auto tar = fstest::BuildLayerTar(spec);
      ASSERT_TRUE(tar.ok()) << tar.status().message();
      auto store = Store::Open(store_root());
      ASSERT_TRUE(store.ok());
      auto d = fstest::AddLayer(*store, *tar);
      ASSERT_TRUE(d.ok()) << d.status().message();
      layers_.push_back(*d);
    }
  }

  stdfs::path store_root() const { return tmp_.path() / "store"; }

  void Mount(unsigned threads = 0) {
    MountConfig c = fstest::ContainerMountConfig(store_root(), layers_, tmp_.path());
    c.threads = threads;
    auto m = Mount::Start(c);
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(m).value();
  }

  void Unmount() {
    if (!mount_) return;
    Status st = mount_->Unmount();
    EXPECT_TRUE(st.ok()) << st.message();
    mount_.reset();
  }

  void Remount() {
    Unmount();
    Mount();
  }

  fstest::TempDir tmp_;
  std::vector<Digest> layers_;
  std::unique_ptr<layerfs::Mount> mount_;
};

TEST_F(MountTest, LowerTreeWithOwnersFromTheIndex) {
  SetUpLayers();
  Mount();
  EXPECT_EQ(ReadAll(mnt() / "bin/sh"), "shell");
  EXPECT_EQ(ReadAll(mnt() / "etc/hostname"), "box");
  struct stat st = Lstat(mnt() / "home/redis/data");
  EXPECT_EQ(st.st_uid, 999u);
  EXPECT_EQ(st.st_gid, 999u);
  EXPECT_EQ(st.st_mode, S_IFREG | 0600);
  EXPECT_EQ(st.st_size, 10);
  EXPECT_EQ(Lstat(mnt() / "etc/shadow").st_gid, 42u);
  char buf[64] = {};
  ASSERT_EQ(::readlink((mnt() / "link").c_str(), buf, sizeof(buf)), 6);
  EXPECT_STREQ(buf, "bin/sh");
  EXPECT_EQ(List(mnt()), (std::set<std::string>{"bin", "etc", "home", "replaced", "hl1", "hl2", "link", "empty",
                                                "movedir"}));
  EXPECT_EQ(List(mnt() / "replaced"), (std::set<std::string>{"new"}));
  EXPECT_TRUE(List(mnt() / "empty").empty());
  EXPECT_FALSE(stdfs::exists(mnt() / "gone"));
}

TEST_F(MountTest, WritesLandInUpperAndSurviveRemount) {
  SetUpLayers();
  Mount();
  WriteAll(mnt() / "etc/passwd", "changed");
  WriteAll(mnt() / "new.txt", "fresh");
  ASSERT_EQ(::unlink((mnt() / "bin/sh").c_str()), 0);
  ASSERT_EQ(::mkdir((mnt() / "newdir").c_str(), 0700), 0);
  EXPECT_EQ(ReadAll(upper() / "etc/passwd"), "changed");
  struct stat wh = Lstat(upper() / "bin/sh");
  EXPECT_TRUE(S_ISCHR(wh.st_mode) && wh.st_rdev == makedev(0, 0)) << "overlay whiteout";
  Remount();
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "changed");
  EXPECT_EQ(ReadAll(mnt() / "new.txt"), "fresh");
  EXPECT_FALSE(stdfs::exists(mnt() / "bin/sh"));
  EXPECT_EQ(Lstat(mnt() / "newdir").st_mode, S_IFDIR | 0700);
  EXPECT_TRUE(List(tmp_.path() / "work").empty());
}

TEST_F(MountTest, CreateFlagsTruncateAppendFallocateFsync) {
  SetUpLayers();
  Mount();
  auto p = mnt() / "f";
  int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(Lstat(p).st_mode, S_IFREG | 0640);
  EXPECT_EQ(::open(p.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  EXPECT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::fdatasync(fd), 0);
  EXPECT_EQ(::fallocate(fd, 0, 0, 8192), 0);
  EXPECT_EQ(Lstat(p).st_size, 8192);
  EXPECT_EQ(::ftruncate(fd, 3), 0);
  ::close(fd);
  EXPECT_EQ(ReadAll(p), "hel");
  fd = ::open((mnt() / "etc/passwd").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "+", 1), 1);
  ::close(fd);
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "root:x:0:0+");
  fd = ::open((mnt() / "bin/sh").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(Lstat(mnt() / "bin/sh").st_size, 0);
  EXPECT_EQ(::truncate((mnt() / "etc/hostname").c_str(), 1), 0);
  EXPECT_EQ(ReadAll(mnt() / "etc/hostname"), "b");
}

TEST_F(MountTest, CopyUpRaceCopiesOnceAndKeepsEveryWrite) {
  std::string content(1 << 20, 'x');
  SetUpLayers({{FileEntry("big", content)}});
  Mount(16);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  threads.reserve(16);
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      int fd = ::open((mnt() / "big").c_str(), O_WRONLY);
      if (fd < 0 || ::pwrite(fd, "0123456789abcdef" + t, 1, off_t{t} * 4096) != 1) failures++;
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::string got = ReadAll(mnt() / "big");
  ASSERT_EQ(got.size(), content.size());
  for (int t = 0; t < 16; ++t) EXPECT_EQ(got[size_t(t) * 4096], "0123456789abcdef"[t]) << t;
  EXPECT_EQ(got[5], 'x');
  EXPECT_TRUE(List(tmp_.path() / "work").empty());
}

TEST_F(MountTest, InoStableAcrossLookupCopyUpAndRemount) {
  SetUpLayers();
  Mount();
  ino_t before = Lstat(mnt() / "etc/passwd").st_ino;
  ino_t dir_before = Lstat(mnt() / "etc").st_ino;
  WriteAll(mnt() / "etc/passwd", "x");
  EXPECT_EQ(Lstat(mnt() / "etc/passwd").st_ino, before);
  EXPECT_EQ(Lstat(mnt() / "etc").st_ino, dir_before);
  ino_t created = Lstat(mnt() / "etc/hostname").st_ino;
  Remount();
  EXPECT_EQ(Lstat(mnt() / "etc/passwd").st_ino, before);
  EXPECT_EQ(Lstat(mnt() / "etc").st_ino, dir_before);
  EXPECT_EQ(Lstat(mnt() / "etc/hostname").st_ino, created);
  ASSERT_EQ(::rename((mnt() / "etc/passwd").c_str(), (mnt() / "moved").c_str()), 0);
  Remount();
  EXPECT_EQ(Lstat(mnt() / "moved").st_ino, before);
}

TEST_F(MountTest, LowerHardLinksShareInoAndNlinkAndStayLinkedAfterCopyUp) {
  SetUpLayers();
  Mount();
  struct stat a = Lstat(mnt() / "hl1"), b = Lstat(mnt() / "hl2");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  WriteAll(mnt() / "hl1", "rewritten");
  EXPECT_EQ(ReadAll(mnt() / "hl2"), "rewritten");
  b = Lstat(mnt() / "hl2");
  EXPECT_EQ(b.st_ino, a.st_ino);
  EXPECT_EQ(b.st_nlink, 2u);
  ASSERT_EQ(::link((mnt() / "hl2").c_str(), (mnt() / "hl3").c_str()), 0);
  EXPECT_EQ(Lstat(mnt() / "hl1").st_nlink, 3u);
  EXPECT_EQ(Lstat(mnt() / "hl3").st_ino, a.st_ino);
}

TEST_F(MountTest, RenameLowerDirectoryWithoutExdev) {
  SetUpLayers();
  Mount();
  ASSERT_EQ(::rename((mnt() / "movedir").c_str(), (mnt() / "home/moved").c_str()), 0) << strerror(errno);
  EXPECT_FALSE(stdfs::exists(mnt() / "movedir"));
  EXPECT_EQ(List(mnt() / "home/moved"), (std::set<std::string>{"c1", "sub"}));
  EXPECT_EQ(ReadAll(mnt() / "home/moved/sub/c2"), "c2");
  Remount();
  EXPECT_EQ(ReadAll(mnt() / "home/moved/c1"), "c1");
  EXPECT_FALSE(stdfs::exists(mnt() / "movedir"));
  WriteAll(mnt() / "home/moved/c1", "edited");
  Remount();
  EXPECT_EQ(ReadAll(mnt() / "home/moved/c1"), "edited");
}

TEST_F(MountTest, RenameNoreplaceAndExchange) {
  SetUpLayers();
  Mount();
  auto a = mnt() / "bin/sh", b = mnt() / "etc/passwd";
  EXPECT_EQ(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE), 0) << strerror(errno);
  EXPECT_EQ(ReadAll(a), "root:x:0:0");
  EXPECT_EQ(ReadAll(b), "shell");
  ASSERT_EQ(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, (mnt() / "fresh").c_str(), RENAME_NOREPLACE), 0);
  EXPECT_FALSE(stdfs::exists(a));
  Remount();
  EXPECT_EQ(ReadAll(mnt() / "fresh"), "root:x:0:0");
  EXPECT_FALSE(stdfs::exists(a));
}

TEST_F(MountTest, RmdirOfLowerDirEmptyAfterWhiteoutsAndRecreate) {
  SetUpLayers();
  Mount();
  EXPECT_EQ(::rmdir((mnt() / "home").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(::rmdir((mnt() / "empty").c_str()), 0) << strerror(errno);
  EXPECT_FALSE(stdfs::exists(mnt() / "empty"));
  ASSERT_EQ(::unlink((mnt() / "replaced/new").c_str()), 0);
  ASSERT_EQ(::rmdir((mnt() / "replaced").c_str()), 0);
  ASSERT_EQ(::mkdir((mnt() / "replaced").c_str(), 0755), 0);
  EXPECT_TRUE(List(mnt() / "replaced").empty()) << "a recreated dir must be opaque";
  Remount();
  EXPECT_TRUE(List(mnt() / "replaced").empty());
  EXPECT_FALSE(stdfs::exists(mnt() / "empty"));
}

TEST_F(MountTest, SymlinkLinkMknodChmodChownUtimens) {
  SetUpLayers();
  Mount();
  ASSERT_EQ(::symlink("target", (mnt() / "s").c_str()), 0);
  char buf[16] = {};
  EXPECT_EQ(::readlink((mnt() / "s").c_str(), buf, sizeof(buf)), 6);
  ASSERT_EQ(::mkfifo((mnt() / "fifo").c_str(), 0600), 0);
  EXPECT_TRUE(S_ISFIFO(Lstat(mnt() / "fifo").st_mode));
  if (geteuid() == 0) {
    ASSERT_EQ(::mknod((mnt() / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    EXPECT_EQ(Lstat(mnt() / "null").st_rdev, makedev(1, 3));
    ASSERT_EQ(::chown((mnt() / "bin/sh").c_str(), 123, 456), 0);
    EXPECT_EQ(Lstat(mnt() / "bin/sh").st_uid, 123u);
    EXPECT_EQ(Lstat(mnt() / "bin/sh").st_gid, 456u);
  }
  ASSERT_EQ(::chmod((mnt() / "bin/sh").c_str(), 04711), 0);
  EXPECT_EQ(Lstat(mnt() / "bin/sh").st_mode, S_IFREG | 04711);
  struct timespec t[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (mnt() / "etc/passwd").c_str(), t, 0), 0);
  struct stat st = Lstat(mnt() / "etc/passwd");
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "root:x:0:0");
  Remount();
  EXPECT_EQ(Lstat(mnt() / "bin/sh").st_mode, S_IFREG | 04711);
  EXPECT_EQ(Lstat(mnt() / "etc/passwd").st_mtim.tv_sec, 2000);
}

TEST_F(MountTest, XattrsUserAndPrivateHidden) {
  SetUpLayers();
  Mount();
  auto p = (mnt() / "etc/passwd").string();
  ASSERT_EQ(::setxattr(p.c_str(), "user.color", "blue", 4, 0), 0) << strerror(errno);
  char buf[64] = {};
  EXPECT_EQ(::getxattr(p.c_str(), "user.color", buf, sizeof(buf)), 4);
  EXPECT_STREQ(buf, "blue");
  EXPECT_EQ(::setxattr(p.c_str(), "trusted.overlay.opaque", "y", 1, 0), -1);
  EXPECT_EQ(::getxattr(p.c_str(), "trusted.layerfs.origin", buf, sizeof(buf)), -1);
  char list[1024];
  ssize_t n = ::listxattr(p.c_str(), list, sizeof(list));
  ASSERT_GT(n, 0);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += strlen(list + i) + 1) names.insert(list + i);
  EXPECT_EQ(names, (std::set<std::string>{"user.color"}));
  ASSERT_EQ(::removexattr(p.c_str(), "user.color"), 0);
  EXPECT_EQ(::getxattr(p.c_str(), "user.color", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  // A renamed lower dir carries redirect/origin in the upper: still invisible.
  ASSERT_EQ(::rename((mnt() / "movedir").c_str(), (mnt() / "md").c_str()), 0);
  EXPECT_EQ(::listxattr((mnt() / "md").c_str(), list, sizeof(list)), 0);
}

TEST_F(MountTest, StatfsAndLocks) {
  SetUpLayers();
  Mount();
  struct statvfs sv;
  ASSERT_EQ(::statvfs(mnt().c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0u);
  int a = ::open((mnt() / "etc/passwd").c_str(), O_RDWR);
  int b = ::open((mnt() / "etc/passwd").c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(::flock(a, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_EQ(::flock(a, LOCK_UN), 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_len = 10;
  EXPECT_EQ(::fcntl(a, F_OFD_SETLK, &fl), 0);
  EXPECT_EQ(::fcntl(b, F_OFD_SETLK, &fl), -1);
  ::close(a);
  ::close(b);
}

TEST_F(MountTest, ReaddirOffsetsAreStableForSeekdir) {
  SetUpLayers();
  Mount();
  for (int i = 0; i < 50; ++i) WriteAll(mnt() / "etc" / ("n" + std::to_string(i)), "x");
  for (const char* dir : {"etc", "bin", "home"}) {
    DIR* d = ::opendir((mnt() / dir).c_str());
    ASSERT_NE(d, nullptr);
    std::vector<std::pair<long, std::string>> seen;
    while (true) {
      long pos = ::telldir(d);
      struct dirent* e = ::readdir(d);
      if (!e) break;
      seen.emplace_back(pos, e->d_name);
      if (std::string(e->d_name) == "passwd") {
        EXPECT_EQ(e->d_type, DT_REG);
      }
    }
    for (auto it = seen.rbegin(); it != seen.rend(); ++it) {
      ::seekdir(d, it->first);
      struct dirent* e = ::readdir(d);
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(it->second, e->d_name);
    }
    ::closedir(d);
  }
}

TEST_F(MountTest, MmapSharedWritesReachTheFile) {
  SetUpLayers();
  Mount();
  int fd = ::open((mnt() / "etc/passwd").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  std::memcpy(p, "ROOT", 4);
  ASSERT_EQ(::msync(p, 10, MS_SYNC), 0);
  ::munmap(p, 10);
  ::close(fd);
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "ROOT:x:0:0");
  Remount();
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "ROOT:x:0:0");
}

TEST_F(MountTest, ReaderOpenedBeforeCopyUpSeesNewData) {
  SetUpLayers();
  Mount();
  int r = ::open((mnt() / "etc/passwd").c_str(), O_RDONLY);
  ASSERT_GE(r, 0);
  WriteAll(mnt() / "etc/passwd", "after copy-up");
  char buf[32] = {};
  // The kernel may serve cached pages; a direct read through a new fd must see the new data,
  // and the old fd must not see the lower file's content past its old size.
  EXPECT_EQ(ReadAll(mnt() / "etc/passwd"), "after copy-up");
  ssize_t n = ::pread(r, buf, sizeof(buf), 0);
  // With FUSE passthrough the old fd stays bound to the layer file (docs/passthrough.md).
  bool bound = dynamic_cast<FuseMount&>(*mount_).fs().passthrough().enabled();
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), bound ? "root:x:0:0" : "after copy-up");
  ::close(r);
}

}  // namespace
}  // namespace layerfs
