#include "layerstore/layer/layer_index.h"

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

LayerIndex SampleIndex() {
  LayerIndex idx;
  auto& e = idx.entries();
  e.push_back({.path = "", .type = EntryType::kDirectory, .mode = 0755, .opaque = true});
  e.push_back({.path = "bin", .type = EntryType::kDirectory, .mode = 0755, .mtime_sec = 1700000000, .mtime_nsec = 123456789});
  e.push_back({.path = "bin/busybox", .type = EntryType::kRegular, .mode = 04755, .uid = 0, .gid = 0, .size = 1234567, .mtime_sec = -5, .mtime_nsec = 999999999, .hardlink_group = 1, .xattrs = {{"security.capability", std::string("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00", 10)}, {"user.empty", ""}}});
  e.push_back({.path = "bin/sh", .type = EntryType::kRegular, .mode = 04755, .size = 1234567, .hardlink_group = 1});
  e.push_back({.path = "dev/null", .type = EntryType::kCharDevice, .mode = 0666, .rdev = (1ull << 8) | 3});
  e.push_back({.path = "dev/sda", .type = EntryType::kBlockDevice, .mode = 0660, .gid = 6, .rdev = 0xfffffffffffull});
  e.push_back({.path = "etc/gone", .type = EntryType::kWhiteout});
  e.push_back({.path = "run/fifo", .type = EntryType::kFifo, .mode = 01777, .uid = 4294967295u, .gid = 4294967294u});
  e.push_back({.path = "run/sock", .type = EntryType::kSocket, .mode = 0600, .uid = 999, .gid = 999});
  e.push_back({.path = "usr/lib/l\xc3\xa9nk", .type = EntryType::kSymlink, .mode = 0777, .size = 9, .mtime_sec = INT64_MAX, .link_target = "../x/\n\x01\xff"});
  e.push_back({.path = "var/lib/big", .type = EntryType::kRegular, .mode = 0, .size = UINT64_MAX, .mtime_sec = INT64_MIN});
  return idx;
}

TEST(LayerIndexTest, RoundTripsEveryField) {
  testing::TempDir dir;
  LayerIndex idx = SampleIndex();
  ASSERT_TRUE(idx.Write(dir.path() / "index").ok());
  auto back = LayerIndex::Read(dir.path() / "index");
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->entries().size(), idx.entries().size());
  for (size_t i = 0; i < idx.entries().size(); ++i) EXPECT_EQ(back->entries()[i], idx.entries()[i]) << i;
}

TEST(LayerIndexTest, EmptyIndexRoundTrips) {
  testing::TempDir dir;
  ASSERT_TRUE(LayerIndex().Write(dir.path() / "index").ok());
  auto back = LayerIndex::Read(dir.path() / "index");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->entries().empty());
}

TEST(LayerIndexTest, SortOrdersByPathBytes) {
  LayerIndex idx;
  for (const char* p : {"b", "a/b", "", "a", "a-b", "a/a"}) idx.entries().push_back({.path = p});
  idx.Sort();
  std::vector<std::string> got;
  for (const auto& e : idx.entries()) got.push_back(e.path);
  EXPECT_EQ(got, (std::vector<std::string>{"", "a", "a-b", "a/a", "a/b", "b"}));
}

TEST(LayerIndexTest, EveryTruncationIsAnError) {
  testing::TempDir dir;
  ASSERT_TRUE(SampleIndex().Write(dir.path() / "index").ok());
  std::string bytes = testing::ReadFile(dir.path() / "index");
  for (size_t n = 0; n < bytes.size(); ++n) {
    testing::WriteFile(dir.path() / "cut", bytes.substr(0, n));
    auto r = LayerIndex::Read(dir.path() / "cut");
    ASSERT_FALSE(r.ok()) << "truncated at " << n;
    EXPECT_EQ(r.status().code(), EINVAL);
    EXPECT_NE(r.status().message().find("cut"), std::string::npos);
  }
}

TEST(LayerIndexTest, EverySingleByteCorruptionIsAnError) {
  testing::TempDir dir;
  ASSERT_TRUE(SampleIndex().Write(dir.path() / "index").ok());
  std::string bytes = testing::ReadFile(dir.path() / "index");
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    testing::WriteFile(dir.path() / "bad", bad);
    EXPECT_FALSE(LayerIndex::Read(dir.path() / "bad").ok()) << "flipped byte " << i;
  }
}

TEST(LayerIndexTest, TrailingGarbageAndWrongMagicAreErrors) {
  testing::TempDir dir;
  ASSERT_TRUE(SampleIndex().Write(dir.path() / "index").ok());
  std::string bytes = testing::ReadFile(dir.path() / "index");
  testing::WriteFile(dir.path() / "long", bytes + "x");
  EXPECT_FALSE(LayerIndex::Read(dir.path() / "long").ok());
  testing::WriteFile(dir.path() / "magic", "NOTINDEX" + bytes.substr(8));
  auto r = LayerIndex::Read(dir.path() / "magic");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a layer index"), std::string::npos);
  auto missing = LayerIndex::Read(dir.path() / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ENOENT);
}

TEST(LayerIndexTest, PrefixSharingKeepsTheFileSmall) {
  testing::TempDir dir;
  LayerIndex idx;
  size_t path_bytes = 0;
  for (int i = 0; i < 1000; ++i) {
    idx.entries().push_back({.path = "usr/share/locale/some-language/LC_MESSAGES/file" + std::to_string(1000 + i)});
    path_bytes += idx.entries().back().path.size();
  }
  ASSERT_TRUE(idx.Write(dir.path() / "index").ok());
  EXPECT_LT(std::filesystem::file_size(dir.path() / "index"), path_bytes / 2);
  auto back = LayerIndex::Read(dir.path() / "index");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries(), idx.entries());
}

}  // namespace
}  // namespace layerfs
