#include "layerstore/base/digest.h"

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Sha256Of("").hex(), kEmpty);
  EXPECT_EQ(Sha256Of("abc").hex(), kAbc);
  EXPECT_EQ(Sha256Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(DigestTest, StreamingEqualsOneShot) {
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + (i >> 9));
  Sha256 h;
  for (size_t off = 0; off < data.size(); off += 7777) h.Update(data.data() + off, std::min<size_t>(7777, data.size() - off));
  EXPECT_EQ(h.Finish(), Sha256Of(data));
}

TEST(DigestTest, ParseAcceptsCanonicalForm) {
  auto d = Digest::Parse(std::string("sha256:") + kAbc);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->hex(), kAbc);
  EXPECT_EQ(d->str(), std::string("sha256:") + kAbc);
  EXPECT_EQ(d->short_id(), "ba7816bf8f01");
  EXPECT_EQ(*d, Sha256Of("abc"));
}

TEST(DigestTest, ParseRejectsMalformed) {
  std::string hex = kAbc;
  for (const std::string& bad : {hex, "sha512:" + hex, "sha256:" + hex.substr(1), "sha256:" + hex + "0",
                                 "sha256:" + std::string(64, 'A'), "sha256:" + std::string(63, '0') + "g",
                                 std::string("sha256:"), std::string("")}) {
    auto d = Digest::Parse(bad);
    EXPECT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), EINVAL) << bad;
  }
}

TEST(DigestTest, FileDigestAndMissingFile) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() / "f", "abc");
  auto d = Sha256OfFile(dir.path() / "f");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->hex(), kAbc);
  auto missing = Sha256OfFile(dir.path() / "nope");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ENOENT);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

}  // namespace
}  // namespace layerfs
