// OverlayIndexCache: a cached stack gives the tree a walk gives; a lower changed at its root or
// replaced is walked again; a corrupt, truncated or foreign cache file is rebuilt, never
// trusted; concurrent first mounts of one stack all succeed and leave one valid file.
#include "fs/index/overlay_index_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& file, const std::string& content) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << content;
}

// Every entry with the metadata a mount serves from the index, one line each.
std::string Dump(const MergedIndex& m) {
  std::ostringstream out;
  for (uint32_t i = 0; i < m.size(); ++i) {
    const MergedNode& n = m.node(i);
    out << m.Path(i) << ' ' << std::oct << n.mode << std::dec << ' ' << n.uid << ':' << n.gid << ' ' << n.size << ' '
        << n.nlink << ' ' << n.layer << ' ' << m.LinkTarget(i) << '\n';
  }
  return out.str();
}

class OverlayIndexCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write(lower0() / "etc/os-release", "ID=test\n");
    Write(lower0() / "usr/bin/tool", "#!/bin/sh\n");
    Write(lower0() / "gone", "x");
    fs::create_symlink("usr/bin", lower0() / "bin");
    Write(lower1() / "etc/hosts", "127.0.0.1 localhost\n");
    ASSERT_EQ(::mknod((lower1() / "gone").c_str(), S_IFCHR | 0600, 0), 0);  // overlay whiteout
  }
  fs::path lower0() const { return tmp_.path() / "l0"; }
  fs::path lower1() const { return tmp_.path() / "l1"; }
  std::vector<fs::path> lowers() const { return {lower0(), lower1()}; }
  fs::path cache_dir() const { return tmp_.path() / "cache"; }

  MergedIndex Load(bool expect_hit) const {
    bool hit = !expect_hit;
    auto r = OverlayIndexCache(cache_dir()).LoadOrBuild(lowers(), &hit);
    EXPECT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(hit, expect_hit);
    return std::move(r).value();
  }
  fs::path CacheFile() const { return OverlayIndexCache(cache_dir()).FileOf(OverlayIndexCache::Key(lowers()).value()); }

  fstest::TempDir tmp_{"layerfs-ovl-cache"};
};

TEST_F(OverlayIndexCacheTest, CacheHitGivesTheTreeAWalkGives) {
  std::string walked = Dump(DirLayer::BuildMerged(lowers()).value());
  EXPECT_EQ(Dump(Load(false)), walked);
  EXPECT_TRUE(fs::exists(CacheFile()));
  EXPECT_EQ(fs::status(cache_dir()).permissions(), fs::perms::owner_all);
  MergedIndex cached = Load(true);
  EXPECT_EQ(Dump(cached), walked);
  EXPECT_FALSE(cached.LookupPath("gone"));
  EXPECT_TRUE(cached.LookupPath("etc/hosts"));
}

TEST_F(OverlayIndexCacheTest, AChangeAtALowersRootIsWalkedAgain) {
  Load(false);
  Write(lower1() / "new-file", "new");
  MergedIndex again = Load(false);
  EXPECT_TRUE(again.LookupPath("new-file"));
  EXPECT_TRUE(Load(true).LookupPath("new-file"));
}

TEST_F(OverlayIndexCacheTest, AReplacedLowerIsWalkedAgain) {
  Load(false);
  // Same path, same root entries, new directory: only the root's identity tells.
  fs::rename(lower0(), tmp_.path() / "old-l0");
  Write(lower0() / "etc/os-release", "ID=other\n");
  Write(lower0() / "usr/bin/tool", "#!/bin/sh\n");
  Write(lower0() / "gone", "x");
  fs::create_symlink("usr/bin", lower0() / "bin");
  Write(lower0() / "usr/bin/other-tool", "#!/bin/sh\n");
  EXPECT_TRUE(Load(false).LookupPath("usr/bin/other-tool"));
}

TEST_F(OverlayIndexCacheTest, CorruptOrTruncatedFilesAreRebuiltNeverTrusted) {
  std::string walked = Dump(Load(false));
  auto size = fs::file_size(CacheFile());
  fs::resize_file(CacheFile(), size / 2);
  EXPECT_EQ(Dump(Load(false)), walked);
  EXPECT_EQ(fs::file_size(CacheFile()), size);  // rewritten whole
  {
    std::fstream f(CacheFile(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(128 + 16);  // the root node's first_child and child_count, past the header
    f.write("\xff\xff\xff\xff\xff\xff\xff\xff", 8);
  }
  EXPECT_EQ(Dump(Load(false)), walked);
  Write(CacheFile(), "");
  EXPECT_EQ(Dump(Load(false)), walked);
  EXPECT_EQ(Dump(Load(true)), walked);
}

TEST_F(OverlayIndexCacheTest, AnotherStacksFileUnderThisKeyIsRebuilt) {
  Load(false);
  fs::path mine = CacheFile();
  std::vector<fs::path> other = {lower1()};
  ASSERT_TRUE(OverlayIndexCache(cache_dir()).LoadOrBuild(other).ok());
  fs::copy_file(OverlayIndexCache(cache_dir()).FileOf(OverlayIndexCache::Key(other).value()), mine,
                fs::copy_options::overwrite_existing);
  EXPECT_TRUE(Load(false).LookupPath("etc/os-release"));
}

TEST_F(OverlayIndexCacheTest, ConcurrentFirstMountsOfOneStackAreSafe) {
  std::string walked = Dump(DirLayer::BuildMerged(lowers()).value());
  constexpr int kMounts = 6;
  std::vector<std::string> dumps(kMounts);
  std::vector<std::thread> threads;
  threads.reserve(kMounts);
  for (int i = 0; i < kMounts; ++i)
    threads.emplace_back([&, i] {
      auto r = OverlayIndexCache(cache_dir()).LoadOrBuild(lowers());
      dumps[i] = r.ok() ? Dump(*r) : r.status().message();
    });
  for (auto& t : threads) t.join();
  for (const auto& d : dumps) EXPECT_EQ(d, walked);
  EXPECT_EQ(Dump(Load(true)), walked);
  for (const auto& e : fs::directory_iterator(cache_dir()))  // no temp file left behind
    EXPECT_EQ(e.path(), CacheFile());
}

TEST_F(OverlayIndexCacheTest, AnUnwritableCacheOnlyCostsAWalk) {
  Write(cache_dir(), "a file where the directory should be");
  bool hit = true;
  auto r = OverlayIndexCache(cache_dir()).LoadOrBuild(lowers(), &hit);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(hit);
  EXPECT_TRUE(r->LookupPath("etc/hosts"));
}

TEST(OverlayIndexCacheDir, EnvironmentChoosesTheDirectory) {
  const char* saved = std::getenv("LAYERFS_INDEX_CACHE");
  std::string keep = saved != nullptr ? saved : "";
  ::setenv("LAYERFS_INDEX_CACHE", "/some/where", 1);
  EXPECT_EQ(OverlayIndexCache::DefaultDir(), fs::path("/some/where"));
  ::unsetenv("LAYERFS_INDEX_CACHE");
  EXPECT_EQ(OverlayIndexCache::DefaultDir().filename(), "overlay-index");
  if (saved != nullptr) ::setenv("LAYERFS_INDEX_CACHE", keep.c_str(), 1);
}

}  // namespace
}  // namespace layerfs
