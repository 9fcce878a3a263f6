// .dockerignore matching: Docker's rules, including '!' exceptions and '**'.
#include "layerstore/build/dockerignore.h"

#include <gtest/gtest.h>

namespace layerfs {
namespace {

DockerIgnore Parse(std::string_view text) {
  auto d = DockerIgnore::Parse(text);
  EXPECT_TRUE(d.ok()) << d.status().message();
  return d.ok() ? *d : DockerIgnore();
}

TEST(DockerIgnore, StarStaysInOneComponent) {
  DockerIgnore d = Parse("*.log\n");
  EXPECT_TRUE(d.Excluded("a.log"));
  EXPECT_FALSE(d.Excluded("dir/a.log"));
  EXPECT_FALSE(d.Excluded("a.txt"));
}

TEST(DockerIgnore, DoubleStarMatchesAnyDepth) {
  DockerIgnore d = Parse("**/*.log\n");
  EXPECT_TRUE(d.Excluded("a.log"));
  EXPECT_TRUE(d.Excluded("x/y/z.log"));
  DockerIgnore e = Parse("docs/**\n");
  EXPECT_TRUE(e.Excluded("docs/a/b"));
  EXPECT_FALSE(e.Excluded("src/docs"));
}

TEST(DockerIgnore, ParentDirectoryMatchExcludesChildren) {
  DockerIgnore d = Parse("node_modules\n/build/\n");
  EXPECT_TRUE(d.Excluded("node_modules/a/b.js"));
  EXPECT_TRUE(d.Excluded("build/out"));
  EXPECT_FALSE(d.Excluded("src/node_modules"));
}

TEST(DockerIgnore, ExceptionsLastMatchWins) {
  DockerIgnore d = Parse("*.md\n!README.md\n");
  EXPECT_TRUE(d.Excluded("CHANGES.md"));
  EXPECT_FALSE(d.Excluded("README.md"));
  DockerIgnore e = Parse("!README.md\n*.md\n");
  EXPECT_TRUE(e.Excluded("README.md"));
}

TEST(DockerIgnore, ReincludeInsideExcludedDir) {
  DockerIgnore d = Parse("dir\n!dir/keep\n");
  EXPECT_TRUE(d.Excluded("dir/other"));
  EXPECT_FALSE(d.Excluded("dir/keep"));
  EXPECT_TRUE(d.MayReinclude("dir"));
  EXPECT_FALSE(d.MayReinclude("elsewhere"));
}

TEST(DockerIgnore, CommentsClassesAndQuestionMark) {
  DockerIgnore d = Parse("# comment\n\n  file?.[ab]  \n");
  EXPECT_TRUE(d.Excluded("file1.a"));
  EXPECT_FALSE(d.Excluded("file1.c"));
  EXPECT_FALSE(d.Excluded("# comment"));
}

TEST(DockerIgnore, CleansPatterns) {
  DockerIgnore d = Parse("./a/../b/./c\n");
  EXPECT_TRUE(d.Excluded("b/c"));
}

}  // namespace
}  // namespace layerfs
