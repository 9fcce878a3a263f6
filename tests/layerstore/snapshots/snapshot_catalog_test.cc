#include "layerstore/snapshots/snapshot_catalog.h"

#include <gtest/gtest.h>

#include "layerstore/snapshots/snapshot_filter.h"
#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

using testing::TempDir;

class SnapshotCatalogTest : public ::testing::Test {
 protected:
  SnapshotCatalog Reopen() { return *SnapshotCatalog::Open(file_); }
  TempDir tmp_;
  std::filesystem::path file_ = tmp_.path() / "metadata.json";
  SnapshotCatalog catalog_ = Reopen();
};

TEST_F(SnapshotCatalogTest, CommittedParentsAreSharedAndSurviveReopen) {
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kActive, "ns/1/extract-1 sha256:a", "", {}).ok());
  ASSERT_TRUE(catalog_.Commit("ns/2/sha256:a", "ns/1/extract-1 sha256:a", {{"k", "v"}}).ok());
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kActive, "c1", "ns/2/sha256:a", {}).ok());
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kView, "v1", "ns/2/sha256:a", {}).ok());

  SnapshotCatalog again = Reopen();
  auto parent = again.Get("ns/2/sha256:a");
  ASSERT_TRUE(parent.ok());
  EXPECT_EQ(parent->info.kind, SnapshotKind::kCommitted);
  EXPECT_EQ(parent->info.labels.at("k"), "v");
  EXPECT_FALSE(again.Get("ns/1/extract-1 sha256:a").ok());
  auto c1 = again.Get("c1");
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->info.parent, "ns/2/sha256:a");
  auto parents = again.Parents("c1");
  ASSERT_TRUE(parents.ok());
  ASSERT_EQ(parents->size(), 1u);
  EXPECT_EQ(parents->front().id, parent->id);
  EXPECT_EQ(again.Get("v1")->info.kind, SnapshotKind::kView);
  EXPECT_EQ(again.NextId(), 4u);
}

TEST_F(SnapshotCatalogTest, RefusesWhatContainerdRefuses) {
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kActive, "a", "", {}).ok());
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "a", "", {}).status().code(), EEXIST);
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "b", "missing", {}).status().code(), ENOENT);
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "b", "a", {}).status().code(), EINVAL);  // parent not committed
  ASSERT_TRUE(catalog_.Commit("A", "a", {}).ok());
  EXPECT_EQ(catalog_.Commit("B", "A", {}).status().code(), EBUSY);  // only active snapshots commit
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kActive, "b", "A", {}).ok());
  EXPECT_EQ(catalog_.Commit("A", "b", {}).status().code(), EEXIST);
  EXPECT_EQ(catalog_.Remove("A").status().code(), EBUSY);  // has a child
  ASSERT_TRUE(catalog_.Remove("b").ok());
  ASSERT_TRUE(catalog_.Remove("A").ok());
  EXPECT_EQ(catalog_.Remove("A").status().code(), ENOENT);
  EXPECT_TRUE(Reopen().List().empty());
}

TEST_F(SnapshotCatalogTest, HostileKeysAndLabelsChangeNothing) {
  for (const std::string& bad : {std::string(""), std::string("/abs"), std::string("a/../b"), std::string(".."),
                                 std::string("a\0b", 3), std::string(2000, 'k'), std::string("tab\there")})
    EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, bad, "", {}).status().code(), EINVAL) << bad;
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "k", "", {{"", "v"}}).status().code(), EINVAL);
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "k", "", {{"k", std::string(5000, 'v')}}).status().code(), EINVAL);
  EXPECT_EQ(catalog_.Create(SnapshotKind::kActive, "k", "", {{"k", std::string("a\0b", 3)}}).status().code(), EINVAL);
  EXPECT_TRUE(catalog_.List().empty());
  EXPECT_FALSE(std::filesystem::exists(file_));
  // containerd's own keys hold '/' and spaces
  EXPECT_TRUE(catalog_.Create(SnapshotKind::kActive, "default/7/extract-1-x sha256:ab", "", {}).ok());
}

TEST_F(SnapshotCatalogTest, UpdateChangesLabelsOnly) {
  ASSERT_TRUE(catalog_.Create(SnapshotKind::kActive, "a", "", {{"x", "1"}, {"y", "2"}}).ok());
  SnapshotInfo info{.name = "a", .parent = "p", .kind = SnapshotKind::kCommitted, .labels = {{"y", "3"}, {"z", "4"}}};
  auto one = catalog_.Update(info, {"labels.y", "labels.x"});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->info.labels, (std::map<std::string, std::string>{{"y", "3"}}));
  EXPECT_EQ(one->info.parent, "");
  EXPECT_EQ(one->info.kind, SnapshotKind::kActive);
  auto all = catalog_.Update(info, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->info.labels, info.labels);
  EXPECT_EQ(catalog_.Update(info, {"parent"}).status().code(), EINVAL);
  EXPECT_EQ(Reopen().Get("a")->info.labels, info.labels);
}

TEST_F(SnapshotCatalogTest, ACorruptFileIsRefused) {
  testing::WriteFile(file_, "{\"next_id\": 1, \"snapshots\": [{\"id\": 5}]}");
  EXPECT_EQ(SnapshotCatalog::Open(file_).status().code(), EINVAL);
}

TEST(SnapshotFilterTest, ContainerdSyntax) {
  SnapshotInfo info{.name = "ns/3/sha256:ab",
                    .parent = "ns/1/sha256:00",
                    .kind = SnapshotKind::kCommitted,
                    .labels = {{"containerd.io/snapshot.ref", "sha256:ab"}, {"app", "web"}}};
  auto match = [&](std::vector<std::string> f) {
    auto filter = SnapshotFilter::Parse(f);
    EXPECT_TRUE(filter.ok()) << f[0];
    return filter.ok() && filter->Matches(info);
  };
  EXPECT_TRUE(match({}));
  EXPECT_TRUE(match({R"(labels."containerd.io/snapshot.ref"==sha256:ab,parent=="ns/1/sha256:00")"}));
  EXPECT_FALSE(match({R"(labels."containerd.io/snapshot.ref"==sha256:ab,parent=="ns/1/other")"}));
  EXPECT_TRUE(match({"kind==active", "kind==committed"}));  // OR of filters
  EXPECT_TRUE(match({"labels.app"}));
  EXPECT_FALSE(match({"labels.db"}));
  EXPECT_TRUE(match({"name~=^ns/3/"}));
  EXPECT_TRUE(match({"labels.app!=db"}));
  EXPECT_FALSE(SnapshotFilter::Parse({"name=\"x"}).ok());
  EXPECT_FALSE(SnapshotFilter::Parse({"name~=("}).ok());
}

// Go's regexp (containerd's) and RE2 take linear time; a backtracking matcher spends ~2^40
// steps on this pair (std::regex did, until the test's timeout).
TEST(SnapshotFilterTest, ARegexThatBacktracksMatchesInLinearTime) {
  SnapshotInfo info{.name = std::string(40, 'a') + "c"};
  auto filter = SnapshotFilter::Parse({"name~=^(a*)*b$"});
  ASSERT_TRUE(filter.ok()) << filter.status().message();
  EXPECT_FALSE(filter->Matches(info));
  info.name.back() = 'b';
  EXPECT_TRUE(filter->Matches(info));
}

}  // namespace
}  // namespace layerfs
