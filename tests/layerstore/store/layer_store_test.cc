#include "layerstore/store/layer_store.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "layerstore/store/blob_store.h"
#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

using testing::Compression;
using testing::TarBuilder;

class LayerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(dir_.path() / "root"); }
  void OpenStore(const fs::path& root) {
    auto s = Store::Open(root);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::make_unique<Store>(std::move(*s));
    blobs_ = std::make_unique<BlobStore>(*store_);
    layers_ = std::make_unique<LayerStore>(*store_);
  }
  LayerRequest Put(const TarBuilder& b, Compression c = Compression::kGzip) {
    auto blob = blobs_->PutBytes(b.Build(c));
    EXPECT_TRUE(blob.ok()) << blob.status().message();
    return {*blob, Sha256Of(b.Build())};
  }
  TarBuilder Layer(int n) {
    TarBuilder b;
    b.Dir("etc");
    b.File("etc/layer", "layer " + std::to_string(n));
    b.File("data/blob" + std::to_string(n), std::string(100000 + n, static_cast<char>('a' + n)));
    return b;
  }
  bool TmpEmpty() const { return fs::is_empty(store_->tmp_dir()); }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<LayerStore> layers_;
};

TEST_F(LayerStoreTest, EnsureUnpacksSeveralLayers) {
  std::vector<LayerRequest> reqs;
  reqs.reserve(5);
  for (int i = 0; i < 5; ++i) reqs.push_back(Put(Layer(i), i % 2 ? Compression::kZstd : Compression::kGzip));
  Status st = layers_->Ensure(reqs);
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<Digest> want;
  for (int i = 0; i < 5; ++i) {
    const Digest& d = reqs[i].diff_id;
    want.push_back(d);
    EXPECT_TRUE(layers_->Has(d));
    EXPECT_EQ(testing::ReadFile(store_->layer_tree(d) / "etc/layer"), "layer " + std::to_string(i));
    auto idx = layers_->ReadIndex(d);
    ASSERT_TRUE(idx.ok()) << idx.status().message();
    ASSERT_EQ(idx->entries().size(), 3u);
    EXPECT_EQ(idx->entries()[0].path, "data/blob" + std::to_string(i));
    EXPECT_EQ(idx->entries()[0].size, 100000u + i);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(layers_->List(), want);
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(LayerStoreTest, DiffIdMismatchLeavesNoLayer) {
  LayerRequest good = Put(Layer(1));
  LayerRequest bad = Put(Layer(2));
  bad.diff_id = Sha256Of("something else");
  Status st = layers_->Ensure({good, bad});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("layer " + bad.diff_id.str() + ": diff_id mismatch"), std::string::npos) << st.message();
  EXPECT_FALSE(layers_->Has(bad.diff_id));
  EXPECT_FALSE(fs::exists(store_->layer_dir(bad.diff_id)));
  EXPECT_TRUE(layers_->Has(good.diff_id));  // verified layers that completed stay
  EXPECT_EQ(layers_->List(), std::vector<Digest>{good.diff_id});
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(LayerStoreTest, MissingBlobIsAClearError) {
  LayerRequest req{Sha256Of("no such blob"), Sha256Of("no such layer")};
  Status st = layers_->Ensure({req});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(req.blob.str()), std::string::npos) << st.message();
  EXPECT_TRUE(layers_->List().empty());
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(LayerStoreTest, ReEnsureIsANoOpAndDuplicatesUnpackOnce) {
  LayerRequest req = Put(Layer(3));
  std::mutex mu;
  std::vector<uint64_t> finals;
  auto progress = [&](const Digest& d, uint64_t done, uint64_t total) {
    std::lock_guard lk(mu);
    EXPECT_EQ(d, req.diff_id);
    EXPECT_LE(done, total);
    if (done == total) finals.push_back(done);
  };
  ASSERT_TRUE(layers_->Ensure({req, req, req}, progress).ok());
  EXPECT_EQ(finals.size(), 1u);
  struct stat before;
  ASSERT_EQ(::stat(store_->layer_dir(req.diff_id).c_str(), &before), 0);
  ASSERT_TRUE(layers_->Ensure({req}, progress).ok());
  EXPECT_EQ(finals.size(), 1u);
  struct stat after;
  ASSERT_EQ(::stat(store_->layer_dir(req.diff_id).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(LayerStoreTest, ConcurrentEnsureOfTheSameLayerFromTwoStores) {
  LayerRequest req = Put(Layer(4));
  LayerStore other(*store_);
  Status a, b;
  std::thread t1([&] { a = layers_->Ensure({req}); });
  std::thread t2([&] { b = other.Ensure({req}); });
  t1.join();
  t2.join();
  EXPECT_TRUE(a.ok()) << a.message();
  EXPECT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(layers_->List(), std::vector<Digest>{req.diff_id});
  EXPECT_EQ(testing::ReadFile(store_->layer_tree(req.diff_id) / "etc/layer"), "layer 4");
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(LayerStoreTest, RemoveDeletesReadOnlyTrees) {
  TarBuilder b;
  b.Dir("ro", 0555);
  b.File("ro/file", "x", 0444);
  b.Dir("ro/locked", 0000);
  b.File("ro/locked/deep", "y", 0000);
  LayerRequest req = Put(b);
  ASSERT_TRUE(layers_->Ensure({req}).ok());
  ASSERT_TRUE(layers_->Has(req.diff_id));
  Status st = layers_->Remove(req.diff_id);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(layers_->Has(req.diff_id));
  EXPECT_FALSE(fs::exists(store_->layer_dir(req.diff_id)));
  EXPECT_TRUE(TmpEmpty());
  Status again = layers_->Remove(req.diff_id);
  EXPECT_EQ(again.code(), ENOENT);
  EXPECT_NE(again.message().find(req.diff_id.str()), std::string::npos);
}

TEST_F(LayerStoreTest, DiskUsageCountsHardLinksOnce) {
  TarBuilder b;
  b.File("big", std::string(1 << 20, 'z'));
  b.Hardlink("big2", "big");
  LayerRequest req = Put(b);
  ASSERT_TRUE(layers_->Ensure({req}).ok());
  auto du = layers_->DiskUsage(req.diff_id);
  ASSERT_TRUE(du.ok()) << du.status().message();
  EXPECT_GE(*du, 1u << 20);
  EXPECT_LT(*du, 2u << 20);
  EXPECT_FALSE(layers_->DiskUsage(Sha256Of("absent")).ok());
}

// A full disk during unpack: one clear error, and the store exactly as it was.
class LayerStoreFullDiskTest : public LayerStoreTest {
 protected:
  void SetUp() override {
    small_ = dir_.path() / "small";
    fs::create_directories(small_);
    if (::mount("tmpfs", small_.c_str(), "tmpfs", 0, "size=2m") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
    mounted_ = true;
    OpenStore(small_);
  }
  void TearDown() override {
    layers_.reset();
    blobs_.reset();
    store_.reset();
    if (mounted_ && ::umount2(small_.c_str(), 0) != 0) ::umount2(small_.c_str(), MNT_DETACH);
  }
  fs::path small_;
  bool mounted_ = false;
};

TEST_F(LayerStoreFullDiskTest, EnospcLeavesTheStoreUnchanged) {
  TarBuilder b;
  b.File("fits", "small");
  b.File("zeros", std::string(8 << 20, '\0'));  // compresses to a few KB, unpacks to 8 MB
  LayerRequest req = Put(b);
  std::set<std::string> before = testing::ListTree(store_->root());
  Status st = layers_->Ensure({req});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ENOSPC) << st.message();
  EXPECT_NE(st.message().find("layer "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("No space left on device"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos);
  EXPECT_FALSE(layers_->Has(req.diff_id));
  EXPECT_EQ(testing::ListTree(store_->root()), before);

  // A blob that does not fit fails the same way and leaves nothing in tmp/ or blobs/.
  std::string big(3 << 20, 'b');
  auto put = blobs_->PutBytes(big);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), ENOSPC) << put.status().message();
  EXPECT_EQ(testing::ListTree(store_->root()), before);
}

}  // namespace
}  // namespace layerfs
