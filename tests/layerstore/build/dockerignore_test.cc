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

// Found by tests/fuzz/dockerignore_fuzz: patterns were std::regex, whose backtracking took
// exponential time on runs of stars ("**************bujld?" never finished on a short path).
// The matcher now follows every position at once; this would run for hours with the regex.
TEST(DockerIgnore, ManyStarsMatchInLinearTime) {
  DockerIgnore d = Parse("!impo" + std::string(40, '*') + "x\n" + std::string(30, '*') + "/a" + std::string(20, '*') + "b\n");
  std::string long_name(200, 'a');
  EXPECT_FALSE(d.Excluded("impo" + long_name));
  EXPECT_FALSE(d.Excluded(long_name + "/" + long_name));
  EXPECT_TRUE(d.Excluded(long_name + "/" + long_name + "b"));
}

TEST(DockerIgnore, ClassesRangesNegationAndEscapes) {
  DockerIgnore d = Parse("[a-c]x\n[!0-9]y\n\\*z\n[]n\n");
  EXPECT_TRUE(d.Excluded("bx"));
  EXPECT_FALSE(d.Excluded("dx"));
  EXPECT_TRUE(d.Excluded("ay"));
  EXPECT_FALSE(d.Excluded("5y"));
  EXPECT_TRUE(d.Excluded("*z"));
  EXPECT_FALSE(d.Excluded("az"));
  EXPECT_FALSE(d.Excluded("n"));  // an empty class matches nothing
  EXPECT_FALSE(DockerIgnore::Parse("[z-a]\n").ok());
  EXPECT_FALSE(DockerIgnore::Parse("[abc\n").ok());
}

TEST(DockerIgnore, DoubleStarSlashMatchesZeroOrMoreDirectories) {
  DockerIgnore d = Parse("a/**/b\n");
  EXPECT_TRUE(d.Excluded("a/b"));
  EXPECT_TRUE(d.Excluded("a/x/y/b"));
  EXPECT_FALSE(d.Excluded("a/xb"));
  EXPECT_FALSE(d.Excluded("ab"));
}

TEST(DockerIgnore, CleansPatterns) {
  DockerIgnore d = Parse("./a/../b/./c\n");
  EXPECT_TRUE(d.Excluded("b/c"));
}

}  // namespace
}  // namespace layerfs
