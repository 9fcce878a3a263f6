#include "layerstore/store/blob_store.h"

#include <thread>

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::make_unique<Store>(std::move(*s));
    blobs_ = std::make_unique<BlobStore>(*store_);
  }
  bool TmpEmpty() const { return fs::is_empty(store_->tmp_dir()); }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(BlobStoreTest, PutBytesPublishesVerifiedBlob) {
  auto d = blobs_->PutBytes("hello");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, Sha256Of("hello"));
  EXPECT_TRUE(blobs_->Has(*d));
  EXPECT_EQ(blobs_->Path(*d), store_->blobs_dir() / d->hex());
  EXPECT_EQ(*blobs_->Size(*d), 5u);
  EXPECT_EQ(*blobs_->ReadAll(*d), "hello");
  EXPECT_TRUE(TmpEmpty());
  EXPECT_EQ(blobs_->List(), std::vector<Digest>{*d});
}

TEST_F(BlobStoreTest, ExpectedDigestAcceptedWhenItMatches) {
  auto d = blobs_->PutBytes("abc", Sha256Of("abc"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Sha256Of("abc"));
  // Existing blob: no-op that still answers the digest.
  EXPECT_TRUE(blobs_->PutBytes("abc", Sha256Of("abc")).ok());
}

TEST_F(BlobStoreTest, DigestMismatchLeavesNothing) {
  Digest want = Sha256Of("the real bytes");
  auto d = blobs_->PutBytes("other bytes", want);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "blob " + want.str() + ": digest mismatch (got " + Sha256Of("other bytes").str() + ")");
  EXPECT_FALSE(blobs_->Has(want));
  EXPECT_FALSE(blobs_->Has(Sha256Of("other bytes")));
  EXPECT_TRUE(TmpEmpty());
  EXPECT_TRUE(blobs_->List().empty());
}

TEST_F(BlobStoreTest, StreamingWriterInPieces) {
  std::string data(5 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>(i / 4096);
  auto w = blobs_->NewWriter(Sha256Of(data));
  ASSERT_TRUE(w.ok());
  for (size_t off = 0; off < data.size(); off += 100000)
    ASSERT_TRUE(w->Write(data.data() + off, std::min<size_t>(100000, data.size() - off)).ok());
  EXPECT_EQ(w->bytes_written(), data.size());
  auto d = w->Commit();
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*blobs_->ReadAll(*d), data);
  EXPECT_FALSE(w->Commit().ok());  // twice is a caller bug, reported
}

TEST_F(BlobStoreTest, AbandonedWriterRemovesItsTempFile) {
  {
    auto w = blobs_->NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Write("partial", 7).ok());
    EXPECT_FALSE(TmpEmpty());
  }
  EXPECT_TRUE(TmpEmpty());
  EXPECT_TRUE(blobs_->List().empty());
}

TEST_F(BlobStoreTest, PutFileStreamsAndVerifies) {
  testing::WriteFile(dir_.path() / "in", "file content");
  auto d = blobs_->PutFile(dir_.path() / "in", Sha256Of("file content"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*blobs_->ReadAll(*d), "file content");
  auto bad = blobs_->PutFile(dir_.path() / "in", Sha256Of("nope"));
  EXPECT_FALSE(bad.ok());
  auto missing = blobs_->PutFile(dir_.path() / "missing");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos);
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(BlobStoreTest, ConcurrentPutsOfTheSameBlob) {
  std::string data(1 << 20, 'q');
  Digest want = Sha256Of(data);
  std::vector<std::thread> threads;
  std::vector<Status> results(8);
  threads.reserve(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      auto w = blobs_->NewWriter(want);
      if (!w.ok()) return void(results[i] = w.status());
      for (size_t off = 0; off < data.size(); off += 65536)
        if (Status st = w->Write(data.data() + off, 65536); !st.ok()) return void(results[i] = st);
      results[i] = w->Commit().status();
    });
  for (auto& t : threads) t.join();
  for (const Status& st : results) EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(blobs_->List(), std::vector<Digest>{want});
  EXPECT_EQ(*blobs_->ReadAll(want), data);
  EXPECT_TRUE(TmpEmpty());
}

TEST_F(BlobStoreTest, RemoveAndMissingBlob) {
  auto d = blobs_->PutBytes("gone soon");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(blobs_->Remove(*d).ok());
  EXPECT_FALSE(blobs_->Has(*d));
  EXPECT_TRUE(blobs_->Remove(*d).ok());
  auto r = blobs_->ReadAll(*d);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(d->str()), std::string::npos);
  EXPECT_FALSE(blobs_->Size(*d).ok());
}

}  // namespace
}  // namespace layerfs
