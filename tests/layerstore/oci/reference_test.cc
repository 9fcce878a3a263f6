#include "layerstore/oci/reference.h"

#include <gtest/gtest.h>

namespace layerfs {
namespace {

std::string Norm(const std::string& s) {
  auto r = ParseReference(s);
  return r.ok() ? r->String() : "ERROR: " + r.status().message();
}

TEST(Reference, NormalisesLikeDocker) {
  EXPECT_EQ(Norm("redis"), "docker.io/library/redis:latest");
  EXPECT_EQ(Norm("redis:7"), "docker.io/library/redis:7");
  EXPECT_EQ(Norm("user/app:1"), "docker.io/user/app:1");
  EXPECT_EQ(Norm("localhost:5000/a"), "localhost:5000/a:latest");
  EXPECT_EQ(Norm("localhost/a"), "localhost/a:latest");
  EXPECT_EQ(Norm("host.tld/a/b:t"), "host.tld/a/b:t");
  EXPECT_EQ(Norm("docker.io/library/redis:latest"), "docker.io/library/redis:latest");
  EXPECT_EQ(Norm("index.docker.io/redis"), "docker.io/library/redis:latest");
  EXPECT_EQ(Norm("a_b-c__d/f---g.h"), "docker.io/a_b-c__d/f---g.h:latest");
}

TEST(Reference, DigestReferencesGetNoDefaultTag) {
  std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(Norm("redis@" + d), "docker.io/library/redis@" + d);
  EXPECT_EQ(Norm("redis:7@" + d), "docker.io/library/redis:7@" + d);
}

TEST(Reference, RejectsInvalidReferences) {
  for (const char* bad : {"", "Redis", "user/App", "redis:", "redis:-x", "a//b", "redis@sha256:abc", ":tag",
                          "-a", "a-", "a..b", "host:5000/"}) {
    auto r = ParseReference(bad);
    EXPECT_FALSE(r.ok()) << bad << " -> " << (r.ok() ? r->String() : "");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), EINVAL);
    }
  }
  EXPECT_NE(ParseReference("Redis").status().message().find("lowercase"), std::string::npos);
  EXPECT_FALSE(ParseReference(std::string(64, 'a')).ok());
}

TEST(Reference, FamiliarForms) {
  EXPECT_EQ(ParseReference("redis")->FamiliarString(), "redis:latest");
  EXPECT_EQ(ParseReference("redis")->FamiliarName(), "redis");
  EXPECT_EQ(ParseReference("user/app:1")->FamiliarString(), "user/app:1");
  EXPECT_EQ(ParseReference("docker.io/library/a/b")->FamiliarName(), "library/a/b");
  EXPECT_EQ(ParseReference("localhost:5000/a:t")->FamiliarString(), "localhost:5000/a:t");
  EXPECT_EQ(FamiliarString("docker.io/library/redis:latest"), "redis:latest");
}

}  // namespace
}  // namespace layerfs
