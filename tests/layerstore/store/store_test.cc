#include "layerstore/store/store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

TEST(StoreTest, OpenCreatesOciLayout) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path() / "root");
  ASSERT_TRUE(store.ok()) << store.status().message();
  for (const fs::path& d : {store->blobs_dir(), store->layers_dir(), store->chains_dir(), store->containers_dir(),
                            store->buildcache_dir(), store->tmp_dir()})
    EXPECT_TRUE(fs::is_directory(d)) << d;
  EXPECT_EQ(testing::ReadFile(store->root() / "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_NE(testing::ReadFile(store->index_json_path()).find("\"manifests\":[]"), std::string::npos);
  EXPECT_TRUE(store->root().is_absolute());
}

TEST(StoreTest, OpenKeepsExistingIndexJson) {
  testing::TempDir dir;
  ASSERT_TRUE(Store::Open(dir.path()).ok());
  testing::WriteFile(dir.path() / "index.json", "{\"custom\":1}");
  ASSERT_TRUE(Store::Open(dir.path()).ok());
  EXPECT_EQ(testing::ReadFile(dir.path() / "index.json"), "{\"custom\":1}");
}

TEST(StoreTest, OpenSweepsTmpLitter) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  fs::create_directories(store->tmp_dir() / "layer-dead" / "tree" / "sub");
  testing::WriteFile(store->tmp_dir() / "blob-dead", "half a blob");
  ASSERT_TRUE(Store::Open(dir.path()).ok());
  EXPECT_TRUE(fs::is_empty(store->tmp_dir()));
}

TEST(StoreTest, OpenDoesNotSweepWhileAWriterHoldsTheLock) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto lock = store->LockExclusive();
  ASSERT_TRUE(lock.ok());
  testing::WriteFile(store->tmp_dir() / "blob-in-progress", "x");
  ASSERT_TRUE(Store::Open(dir.path()).ok());
  EXPECT_TRUE(fs::exists(store->tmp_dir() / "blob-in-progress"));
}

TEST(StoreTest, NewTempPathsAreUniqueAndUnderTmp) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::set<fs::path> seen;
  for (int i = 0; i < 1000; ++i) {
    fs::path p = store->NewTempPath("x");
    EXPECT_EQ(p.parent_path(), store->tmp_dir());
    EXPECT_TRUE(seen.insert(p).second);
  }
}

// While another process holds the exclusive lock, Acquire blocks until that process lets go.
// (The child takes the lock: a child forked while we held it would inherit our lock.)
TEST(StoreTest, ExclusiveLockExcludesAnotherProcess) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  int locked[2], release[2];
  ASSERT_EQ(::pipe(locked), 0);
  ASSERT_EQ(::pipe(release), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto lock = StoreLock::Acquire(dir.path(), StoreLock::Mode::kExclusive);
    char c = lock.ok() ? 'y' : 'n';
    (void)!::write(locked[1], &c, 1);
    (void)!::read(release[0], &c, 1);  // hold the lock until the parent says so
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(locked[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  std::atomic<bool> got{false};
  std::thread taker([&] {
    auto lock = store->LockExclusive();
    got = lock.ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(got.load()) << "took the lock while another process held it";
  ASSERT_EQ(::write(release[1], "x", 1), 1);
  taker.join();
  EXPECT_TRUE(got.load());
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  for (int fd : {locked[0], locked[1], release[0], release[1]}) ::close(fd);
}

TEST(StoreTest, WriteFileAtomicReplaces) {
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(WriteFileAtomic(*store, dir.path() / "f", "one").ok());
  ASSERT_TRUE(WriteFileAtomic(*store, dir.path() / "f", "two").ok());
  EXPECT_EQ(testing::ReadFile(dir.path() / "f"), "two");
  EXPECT_TRUE(fs::is_empty(store->tmp_dir()));
  EXPECT_FALSE(WriteFileAtomic(*store, dir.path() / "missing-dir" / "f", "x").ok());
  EXPECT_TRUE(fs::is_empty(store->tmp_dir()));
}

}  // namespace
}  // namespace layerfs
