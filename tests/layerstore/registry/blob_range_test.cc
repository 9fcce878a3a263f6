// RegistryClient::GetBlobRange against Debian's docker-registry on 127.0.0.1: a real registry
// answers each Range with 206 and exactly the bytes asked for, at the start, middle and end
// of a blob, and refuses a range past the end.
#include <gtest/gtest.h>

#include "layerstore/registry/registry_client.h"
#include "tests/layerstore/test_util.h"
#include "tests/tools/registry_fixture.h"

namespace layerfs::testing {
namespace {

TEST(BlobRange, RealRegistryServesEachRangeWithOne206) {
  if (!LocalRegistry::Available()) GTEST_SKIP() << "docker-registry is not installed";
  std::string error;
  auto registry = LocalRegistry::Start({.access_log = true}, &error);
  ASSERT_TRUE(registry) << error;
  TempDir dir;
  std::string blob(200000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7 + i / 251);
  WriteFile(dir.path() / "blob", blob);
  Digest digest = Sha256Of(blob);
  RegistryOptions ro;
  ro.registry = registry->host();
  ro.max_attempts = 2;
  ro.backoff = std::chrono::milliseconds(10);
  RegistryClient client(ro);
  ASSERT_TRUE(client.UploadBlob("test/range", digest, dir.path() / "blob").ok());
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 51}, {99999, 12345}, {blob.size() - 51, 51}}) {
    auto r = client.GetBlobRange("test/range", digest, off, len);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, blob.substr(off, len)) << "from " << off;
  }
  EXPECT_EQ(registry->CountInLog("\" 206 "), 3u) << registry->Log();
  EXPECT_FALSE(client.GetBlobRange("test/range", digest, blob.size(), 10).ok());
}

}  // namespace
}  // namespace layerfs::testing
