// The daemon's request counters (fs/engine/request_stats.h), read through the mount as
// `layerfs stats` does (fs/mount/mount_stats.h): each test does one known operation through a
// real mount and expects exactly the FUSE requests the kernel must send for it, so a change
// that adds a round trip (or a cache that stops working) shows up here as a different count.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "fs/engine/request_stats.h"
#include "fs/mount/fuse_mount.h"
#include "fs/mount/mount_stats.h"
#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace stdfs = std::filesystem;
using fstest::DirEntry;
using fstest::FileEntry;
using Counts = std::map<std::string, uint64_t>;

TEST(RequestStatsTest, TextParsesBackAndBadLinesAreErrors) {
  RequestStats stats;
  stats.Add(RequestStats::kLookup);
  stats.Add(RequestStats::kLookup);
  stats.Add(RequestStats::kRelease);
  auto parsed = RequestStats::Parse(stats.Text());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), static_cast<size_t>(RequestStats::kOpCount));
  Counts counts(parsed->begin(), parsed->end());
  EXPECT_EQ(counts["LOOKUP"], 2u);
  EXPECT_EQ(counts["RELEASE"], 1u);
  EXPECT_EQ(counts["READ"], 0u);
  for (const char* bad : {"LOOKUP\n", "LOOKUP x\n", " 3\n", "LOOKUP 3 4\n", "LOOKUP \n"})
    EXPECT_FALSE(RequestStats::Parse(bad).ok()) << bad;
}

class RequestCountTest : public ::testing::Test {
 protected:
  RequestCountTest() : tmp_("layerfs-requests") {}
  ~RequestCountTest() override {
    if (mount_) {
      EXPECT_TRUE(mount_->Unmount().ok());
    }
  }

  stdfs::path mnt() const { return tmp_.path() / "mnt"; }

  void SetUp() override {
    auto store = Store::Open(tmp_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto tar = fstest::BuildLayerTar({DirEntry("etc"), FileEntry("etc/passwd", "root:x:0:0"), FileEntry("etc/group", "root:x:0:"),
                                      DirEntry("usr"), FileEntry("usr/a", "a"), FileEntry("usr/b", "b")});
    ASSERT_TRUE(tar.ok()) << tar.status().message();
    auto d = fstest::AddLayer(*store, *tar);
    ASSERT_TRUE(d.ok()) << d.status().message();
    MountConfig config = fstest::ContainerMountConfig(tmp_.path() / "store", {*d}, tmp_.path());
    config.no_open = NoOpen();
    auto m = FuseMount::Create(config);
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(m).value();
  }

  Counts Now() {
    auto r = ReadRequestStats(mnt());
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? Counts(r->begin(), r->end()) : Counts{};
  }

  // The requests since `before` (opcodes with none left out). RELEASE is sent after close(2)
  // returns, so this waits (up to 5 s) for `releases` of them.
  Counts Since(const Counts& before, uint64_t releases = 0) {
    Counts delta;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);;) {
      delta.clear();
      for (const auto& [op, n] : Now())
        if (n != before.at(op)) delta[op] = n - before.at(op);
      if (delta["RELEASE"] >= releases || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (delta["RELEASE"] == 0) delta.erase("RELEASE");
    return delta;
  }

  bool passthrough() const { return mount_->fs().passthrough().enabled(); }
  virtual bool NoOpen() const { return false; }

  fstest::TempDir tmp_;
  std::unique_ptr<FuseMount> mount_;
};

TEST_F(RequestCountTest, ReadingTheCountsIsNotCounted) {
  Counts before = Now();
  EXPECT_EQ(Since(before), Counts{});
}

TEST_F(RequestCountTest, StatOfACachedEntrySendsNothing) {
  struct stat st;
  Counts before = Now();
  ASSERT_EQ(::stat((mnt() / "etc/passwd").c_str(), &st), 0);
  EXPECT_EQ(Since(before), (Counts{{"LOOKUP", 2}}));  // etc, etc/passwd
  before = Now();
  ASSERT_EQ(::stat((mnt() / "etc/passwd").c_str(), &st), 0);
  ASSERT_EQ(::stat((mnt() / "etc/none").c_str(), &st), -1);
  ASSERT_EQ(::stat((mnt() / "etc/none").c_str(), &st), -1);  // the negative entry is kept
  EXPECT_EQ(Since(before), (Counts{{"LOOKUP", 1}}));
}

TEST_F(RequestCountTest, OpenReadCloseOfALowerFile) {
  struct stat st;
  ASSERT_EQ(::stat((mnt() / "etc/passwd").c_str(), &st), 0);
  Counts before = Now();
  int fd = ::open((mnt() / "etc/passwd").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[64];
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 10);
  ::close(fd);
  // No FLUSH (FOPEN_NOFLUSH: opened read-only). With passthrough the kernel reads the layer
  // file itself.
  Counts expected = {{"OPEN", 1}, {"RELEASE", 1}};
  if (!passthrough()) expected["READ"] = 1;
  EXPECT_EQ(Since(before, 1), expected);
}

// The daemon's fds on files of the store (this test process is the daemon).
size_t StoreFds(const stdfs::path& store) {
  size_t n = 0;
  for (const auto& e : stdfs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = stdfs::read_symlink(e.path(), ec);
    if (!ec && target.string().starts_with(store.string() + "/")) ++n;
  }
  return n;
}

// Without passthrough, an open for reading costs the daemon no open(2) of the layer file: it
// is opened at the first READ (a warm read sends none), and closed at the release.
TEST_F(RequestCountTest, AReadOnlyOpenOpensTheLayerFileAtItsFirstRead) {
  if (passthrough()) GTEST_SKIP() << "passthrough binds the layer file in the OPEN reply";
  stdfs::path store = stdfs::canonical(tmp_.path() / "store");
  size_t idle = StoreFds(store);
  int a = ::open((mnt() / "usr/a").c_str(), O_RDONLY);
  int b = ::open((mnt() / "usr/b").c_str(), O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(StoreFds(store), idle);
  char buf[8];
  EXPECT_EQ(::read(a, buf, sizeof(buf)), 1);
  EXPECT_EQ(buf[0], 'a');
  EXPECT_EQ(StoreFds(store), idle + 1);
  ::close(a);
  ::close(b);
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       StoreFds(store) != idle && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(StoreFds(store), idle);
}

// The upper here is on ext4, whose close(2) cannot fail: writers get no FLUSH either.
TEST_F(RequestCountTest, WritingANewUpperFileSendsNoFlush) {
  Counts before = Now();
  int fd = ::open((mnt() / "usr/new").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "data", 4), 4);
  ::close(fd);
  Counts sent = Since(before, 1);
  EXPECT_EQ(sent["CREATE"], 1u);
  EXPECT_EQ(sent["WRITE"], passthrough() ? 0u : 1u);  // passthrough: the kernel writes the upper file
  EXPECT_EQ(sent["RELEASE"], 1u);
  EXPECT_EQ(sent.count("FLUSH"), 0u);
}

// READDIRPLUS: the listing brings each entry's node and attributes, so stats of what was
// listed send nothing; a second listing comes from the kernel's cache.
TEST_F(RequestCountTest, AWalkLooksUpNothingItListedAndListsOnce) {
  auto walk = [&] {
    size_t n = 0;
    for (const auto& e : stdfs::directory_iterator(mnt() / "usr")) {
      struct stat st;
      EXPECT_EQ(::lstat(e.path().c_str(), &st), 0);
      ++n;
    }
    return n;
  };
  struct stat st;
  ASSERT_EQ(::stat((mnt() / "usr").c_str(), &st), 0);
  Counts before = Now();
  EXPECT_EQ(walk(), 2u);
  // The entries, then the end; the mount's first OPENDIR is answered ENOSYS, which turns on
  // zero-message opendir for good.
  EXPECT_EQ(Since(before), (Counts{{"OPENDIR", 1}, {"READDIRPLUS", 2}}));
  before = Now();
  EXPECT_EQ(walk(), 2u);
  // glibc's opendir fstats the directory, whose atime the uncached listing marked stale
  // (the kernel's fuse_invalidate_atime): one GETATTR, nothing else.
  EXPECT_EQ(Since(before), (Counts{{"GETATTR", 1}}));
}

// -o no_open (LayerFsOptions::no_open): the first OPEN is refused and from then on the kernel
// opens and closes files without a request.
class NoOpenRequestCountTest : public RequestCountTest {
 protected:
  bool NoOpen() const override { return true; }

  std::string ReadAll(const char* path) {
    int fd = ::open((mnt() / path).c_str(), O_RDONLY);
    EXPECT_GE(fd, 0) << path;
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    ::close(fd);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
  stdfs::path upper() const { return tmp_.path() / "upper"; }
};

TEST_F(NoOpenRequestCountTest, OpensAndClosesSendNothingOnceRefused) {
  EXPECT_FALSE(passthrough());
  struct stat st;
  ASSERT_EQ(::stat((mnt() / "usr/a").c_str(), &st), 0);
  ASSERT_EQ(::stat((mnt() / "usr/b").c_str(), &st), 0);
  Counts before = Now();
  EXPECT_EQ(ReadAll("usr/a"), "a");
  // Its close sends a FLUSH (no open said FOPEN_NOFLUSH), whose ENOSYS also ends those.
  EXPECT_EQ(Since(before), (Counts{{"OPEN", 1}, {"READ", 1}, {"FLUSH", 1}}));
  before = Now();
  EXPECT_EQ(ReadAll("usr/b"), "b");
  EXPECT_EQ(Since(before), (Counts{{"READ", 1}}));
  before = Now();
  EXPECT_EQ(ReadAll("usr/a"), "a");  // cached: no request at all
  EXPECT_EQ(Since(before), Counts{});
}

// The copy-up comes with the first write or truncate, and a request opens the upper file itself.
TEST_F(NoOpenRequestCountTest, WritesAndTruncatesCopyUpWithoutAnOpen) {
  EXPECT_EQ(ReadAll("usr/a"), "a");  // the refused OPEN
  int fd = ::open((mnt() / "etc/passwd").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(stdfs::exists(upper() / "etc/passwd"));  // opened, not yet written
  EXPECT_EQ(::pwrite(fd, "toor", 4, 0), 4);
  ::close(fd);
  EXPECT_EQ(ReadAll("etc/passwd"), "toor:x:0:0");
  EXPECT_TRUE(stdfs::exists(upper() / "etc/passwd"));
  fd = ::open((mnt() / "usr/b").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(stdfs::file_size(mnt() / "usr/b"), 0u);
  EXPECT_EQ(stdfs::file_size(upper() / "usr/b"), 0u);
  Counts before = Now();
  fd = ::open((mnt() / "usr/new").c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "data", 4), 4);
  EXPECT_EQ(::fsync(fd), 0);
  char buf[8];
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 4);
  ::close(fd);
  Counts sent = Since(before);
  EXPECT_EQ(sent.count("RELEASE"), 0u);
  EXPECT_EQ(sent.count("FLUSH"), 0u);
  EXPECT_EQ(ReadAll("usr/new"), "data");
}

TEST(ReadRequestStatsTest, APlainDirectoryHasNoCounts) {
  fstest::TempDir tmp("layerfs-requests");
  auto r = ReadRequestStats(tmp.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a layerfs mount point"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace layerfs
