// The build cache: keys change exactly when they must, records survive and validate, prune
// keeps what images use. Builds here use FROM scratch with COPY and metadata steps (no RUN, so
// no mount); tests/tools/build_test.cc covers RUN.
#include "layerstore/store/build_cache.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "layerstore/build/image_builder.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

using testing::TempDir;
using testing::WriteFile;

TEST(StepKey, DependsOnEveryInput) {
  Digest p1 = Sha256Of("parent1"), p2 = Sha256Of("parent2");
  Digest k = StepKey(p1, "ENV A=1", "");
  EXPECT_EQ(k, StepKey(p1, "ENV A=1", ""));
  EXPECT_NE(k, StepKey(p2, "ENV A=1", ""));
  EXPECT_NE(k, StepKey(p1, "ENV A=2", ""));
  EXPECT_NE(k, StepKey(p1, "ENV A=1", "abc"));
  EXPECT_NE(k, StepKey(Digest(), "ENV A=1", ""));
  // Fields are length-prefixed: moving text between fields changes the key.
  EXPECT_NE(StepKey(p1, "ab", "c"), StepKey(p1, "a", "bc"));
}

class BuildCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path() / "store");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_.emplace(std::move(s).value());
    ctx_ = dir_.path() / "ctx";
    std::filesystem::create_directories(ctx_ / "sub");
    WriteFile(ctx_ / "one.txt", "one\n");
    WriteFile(ctx_ / "two.txt", "two\n");
    WriteFile(ctx_ / "sub" / "three.txt", "three\n");
  }

  void Dockerfile(const std::string& text) { WriteFile(ctx_ / "Dockerfile", text); }

  // Builds; returns the image and the number of steps that were cache hits.
  Result<Image> Build(int* cached = nullptr, bool no_cache = false) {
    lines_.clear();
    ImageBuilder b(*store_, nullptr, [this](const std::string& l) { lines_.push_back(l); });
    BuildOptions o;
    o.context = ctx_;
    o.tags = {"test:latest"};
    o.no_cache = no_cache;
    auto image = b.Build(o);
    if (cached) {
      *cached = 0;
      for (const auto& l : lines_) *cached += l.find("CACHED") != std::string::npos;
    }
    return image;
  }

  // Which steps (by number) were cached.
  std::vector<int> CachedSteps() const {
    std::vector<int> out;
    int step = 0;
    for (const auto& l : lines_) {
      if (l.rfind("Step ", 0) == 0) step = std::stoi(l.substr(5));
      if (l.find("CACHED") != std::string::npos) out.push_back(step);
    }
    return out;
  }

  std::set<std::string> StoreFiles() const {
    auto all = testing::ListTree(store_->root());
    std::erase_if(all, [](const std::string& p) { return p.rfind("tmp", 0) == 0 || p == "lock"; });
    return all;
  }

  TempDir dir_;
  std::optional<Store> store_;
  std::filesystem::path ctx_;
  std::vector<std::string> lines_;
};

constexpr const char* kFile =
    "FROM scratch\n"
    "COPY one.txt /one\n"
    "ENV MODE=a\n"
    "COPY two.txt sub/ /data/\n"
    "LABEL x=y\n"
    "CMD [\"/one\"]\n";

TEST_F(BuildCacheTest, UnchangedRebuildIsFullyCachedWithTheSameId) {
  Dockerfile(kFile);
  int cached = 0;
  auto first = Build(&cached);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(cached, 0);
  auto second = Build(&cached);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(cached, 5);
  EXPECT_EQ(first->id(), second->id());
  EXPECT_EQ(first->diff_ids.size(), 2u);
}

TEST_F(BuildCacheTest, ChangedEnvChangesTheLaterKeysOnly) {
  Dockerfile(kFile);
  ASSERT_TRUE(Build().ok());
  std::string changed = kFile;
  changed.replace(changed.find("MODE=a"), 6, "MODE=b");
  Dockerfile(changed);
  auto image = Build();
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(CachedSteps(), (std::vector<int>{2}));  // COPY one.txt still cached; ENV and after rerun
}

TEST_F(BuildCacheTest, ChangedCopiedFileRerunsThatCopyAndLater) {
  Dockerfile(kFile);
  auto before = Build();
  ASSERT_TRUE(before.ok());
  WriteFile(ctx_ / "sub" / "three.txt", "THREE\n");
  auto after = Build();
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(CachedSteps(), (std::vector<int>{2, 3}));
  EXPECT_NE(before->id(), after->id());
  EXPECT_EQ(before->diff_ids[0], after->diff_ids[0]);
  EXPECT_NE(before->diff_ids[1], after->diff_ids[1]);
}

TEST_F(BuildCacheTest, ModeChangeOfACopiedFileChangesTheKey) {
  Dockerfile(kFile);
  ASSERT_TRUE(Build().ok());
  ASSERT_EQ(::chmod((ctx_ / "two.txt").c_str(), 0600), 0);
  ASSERT_TRUE(Build().ok());
  EXPECT_EQ(CachedSteps(), (std::vector<int>{2, 3}));
}

TEST_F(BuildCacheTest, ChownChangesTheKey) {
  Dockerfile("FROM scratch\nCOPY one.txt /one\n");
  ASSERT_TRUE(Build().ok());
  Dockerfile("FROM scratch\nCOPY --chown=5:6 one.txt /one\n");
  auto image = Build();
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_TRUE(CachedSteps().empty());
  auto index = LayerStore(*store_).ReadIndex(image->diff_ids[0]);
  ASSERT_TRUE(index.ok());
  bool found = false;
  for (const auto& e : index->entries())
    if (e.path == "one") {
      found = true;
      EXPECT_EQ(e.uid, 5u);
      EXPECT_EQ(e.gid, 6u);
    }
  EXPECT_TRUE(found);
}

TEST_F(BuildCacheTest, NoCacheRunsEveryStep) {
  Dockerfile(kFile);
  ASSERT_TRUE(Build().ok());
  int cached = -1;
  ASSERT_TRUE(Build(&cached, /*no_cache=*/true).ok());
  EXPECT_EQ(cached, 0);
}

TEST_F(BuildCacheTest, RecordsSurviveAndValidate) {
  Dockerfile(kFile);
  auto image = Build();
  ASSERT_TRUE(image.ok());
  BuildCache cache(*store_);
  auto records = cache.List();
  EXPECT_EQ(records.size(), 5u);
  for (const auto& r : records) {
    auto hit = cache.Lookup(r.key);
    ASSERT_TRUE(hit.ok());
    EXPECT_TRUE(hit->has_value()) << r.instruction;
  }
  // A record whose layer is gone is a miss, not an error.
  for (const auto& r : records)
    if (!r.diff_id.empty()) {
      ASSERT_TRUE(LayerStore(*store_).Remove(r.diff_id).ok());
      auto hit = cache.Lookup(r.key);
      ASSERT_TRUE(hit.ok());
      EXPECT_FALSE(hit->has_value());
      break;
    }
}

TEST_F(BuildCacheTest, FailedBuildLeavesTheStoreUnchanged) {
  Dockerfile(kFile);
  ASSERT_TRUE(Build().ok());
  auto before = StoreFiles();
  WriteFile(ctx_ / "one.txt", "changed\n");                  // step 2 misses and writes a layer ...
  Dockerfile(std::string(kFile) + "COPY missing.txt /x\n");  // ... then the build fails
  auto image = Build();
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("missing.txt"), std::string::npos) << image.status().message();
  EXPECT_NE(image.status().message().find("line 7"), std::string::npos) << image.status().message();
  EXPECT_EQ(StoreFiles(), before);
}

TEST_F(BuildCacheTest, UnsupportedInstructionNamesLineBeforeAnythingRuns) {
  Dockerfile("FROM scratch\nCOPY one.txt /one\nHEALTHCHECK CMD true\n");
  auto before = StoreFiles();
  auto image = Build();
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("line 3"), std::string::npos);
  EXPECT_NE(image.status().message().find("HEALTHCHECK"), std::string::npos);
  EXPECT_EQ(StoreFiles(), before);
  Dockerfile("FROM scratch\nFROM scratch\n");
  EXPECT_NE(Build().status().message().find("multi-stage"), std::string::npos);
  Dockerfile("FROM scratch\nADD http://example.com/x /x\n");
  EXPECT_NE(Build().status().message().find("URL"), std::string::npos);
}

TEST_F(BuildCacheTest, PruneKeepsWhatImagesUse) {
  Dockerfile(kFile);
  auto image = Build();
  ASSERT_TRUE(image.ok());
  BuildCache cache(*store_);
  auto usage = cache.DiskUsage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->records, 5u);
  EXPECT_EQ(usage->active, 5u);
  auto dangling = cache.Prune(/*all=*/false);
  ASSERT_TRUE(dangling.ok());
  EXPECT_EQ(dangling->records, 0u);  // every record builds toward the tagged image
  auto all = cache.Prune(/*all=*/true);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->records, 5u);
  EXPECT_TRUE(cache.List().empty());
  auto again = ImageStore(*store_).Resolve("test:latest");
  ASSERT_TRUE(again.ok()) << again.status().message();
  for (const auto& d : again->diff_ids) EXPECT_TRUE(LayerStore(*store_).Has(d));
}

TEST_F(BuildCacheTest, PruneRemovesLayersOnlyTheCacheUses) {
  Dockerfile(kFile);
  auto image = Build();
  ASSERT_TRUE(image.ok());
  ImageStore images(*store_);
  ASSERT_TRUE(images.WriteRecords({}).ok());  // as if the image had been removed
  BuildCache cache(*store_);
  auto usage = cache.DiskUsage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->active, 0u);
  EXPECT_GT(usage->size, 0u);
  auto report = cache.Prune(/*all=*/false);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->records, 5u);
  EXPECT_GT(report->bytes, 0u);
  for (const auto& d : image->diff_ids) EXPECT_FALSE(LayerStore(*store_).Has(d));
  EXPECT_TRUE(BlobStore(*store_).List().empty());
}

}  // namespace
}  // namespace layerfs
