// Dockerfile parsing and variable substitution: the edge cases users write.
#include "layerstore/build/dockerfile.h"

#include <gtest/gtest.h>

namespace layerfs {
namespace {

Dockerfile MustParse(std::string_view text) {
  auto df = ParseDockerfile(text);
  EXPECT_TRUE(df.ok()) << df.status().message();
  return df.ok() ? *df : Dockerfile();
}

TEST(DockerfileParse, CommentsBlankLinesAndCase) {
  Dockerfile df = MustParse("# a comment\n\nfrom busybox\n  # indented comment\nrun echo hi\n");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[0].keyword, "FROM");
  EXPECT_EQ(df.instructions[0].args, "busybox");
  EXPECT_EQ(df.instructions[0].line, 3);
  EXPECT_EQ(df.instructions[1].keyword, "RUN");
  EXPECT_EQ(df.instructions[1].line, 5);
}

TEST(DockerfileParse, ContinuationsKeepNextLineTextAndSkipComments) {
  Dockerfile df = MustParse("FROM x\nRUN echo a \\\n    b \\\n# comment inside\n  c\nENV A=1\n");
  ASSERT_EQ(df.instructions.size(), 3u);
  EXPECT_EQ(df.instructions[1].args, "echo a     b   c");
  EXPECT_EQ(df.instructions[1].line, 2);
  EXPECT_EQ(df.instructions[2].line, 6);
}

TEST(DockerfileParse, CrLfLineEndings) {
  Dockerfile df = MustParse("FROM x\r\nRUN a \\\r\n b\r\n");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[1].args, "a  b");
}

TEST(DockerfileParse, EscapeDirectiveChangesContinuation) {
  Dockerfile df = MustParse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n");
  EXPECT_EQ(df.escape, '`');
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[1].args, "dir c:\\   && echo");
}

TEST(DockerfileParse, SyntaxDirectiveIgnoredWithNote) {
  Dockerfile df = MustParse("# syntax=docker/dockerfile:1\nFROM x\n");
  ASSERT_EQ(df.notes.size(), 1u);
  EXPECT_NE(df.notes[0].find("syntax"), std::string::npos);
}

TEST(DockerfileParse, DirectiveAfterInstructionIsAComment) {
  Dockerfile df = MustParse("FROM x\n# escape=`\nRUN a \\\n b\n");
  EXPECT_EQ(df.escape, '\\');
  ASSERT_EQ(df.instructions.size(), 2u);
}

TEST(DockerfileParse, BadEscapeDirectiveNamesTheLine) {
  auto df = ParseDockerfile("# escape=x\nFROM a\n");
  ASSERT_FALSE(df.ok());
  EXPECT_NE(df.status().message().find("line 1"), std::string::npos);
}

TEST(DockerfileParse, ExecAndShellForms) {
  Dockerfile df = MustParse("FROM x\nCMD [\"a\", \"b c\"]\nCMD [not json\nENTRYPOINT [\"x\", 1]\n");
  EXPECT_TRUE(df.instructions[1].exec_form);
  EXPECT_EQ(df.instructions[1].exec_args, (std::vector<std::string>{"a", "b c"}));
  EXPECT_FALSE(df.instructions[2].exec_form);
  EXPECT_FALSE(df.instructions[3].exec_form);  // non-string element: shell form, as Docker
}

TEST(DockerfileParse, Flags) {
  Dockerfile df = MustParse("FROM x\nCOPY --chown=app:app --chmod=755 a b\nENV --notaflag=1\n");
  const auto& copy = df.instructions[1];
  ASSERT_EQ(copy.flags.size(), 2u);
  EXPECT_EQ(copy.flags[0], (std::pair<std::string, std::string>{"chown", "app:app"}));
  EXPECT_EQ(copy.flags[1], (std::pair<std::string, std::string>{"chmod", "755"}));
  EXPECT_EQ(copy.args, "a b");
  EXPECT_TRUE(df.instructions[2].flags.empty());  // ENV takes no flags
}

TEST(DockerfileParse, HeredocRefusedWithLine) {
  auto df = ParseDockerfile("FROM x\nRUN <<EOF\necho hi\nEOF\n");
  ASSERT_FALSE(df.ok());
  EXPECT_NE(df.status().message().find("line 2"), std::string::npos);
  EXPECT_NE(df.status().message().find("heredoc"), std::string::npos);
  EXPECT_TRUE(ParseDockerfile("FROM x\nRUN echo $((1<<2))\n").ok());  // a shift is no heredoc
}

TEST(DockerfileParse, TrailingContinuationAtEof) {
  Dockerfile df = MustParse("FROM x\nRUN echo \\");
  ASSERT_EQ(df.instructions.size(), 2u);
  EXPECT_EQ(df.instructions[1].args, "echo");
}

const VarMap kVars = {{"A", "apple"}, {"EMPTY", ""}, {"SP", "a b"}};

std::string Word(std::string_view s) {
  auto w = ExpandWord(s, kVars);
  EXPECT_TRUE(w.ok()) << w.status().message();
  return w.ok() ? *w : "<error>";
}

TEST(DockerfileExpand, Forms) {
  EXPECT_EQ(Word("$A"), "apple");
  EXPECT_EQ(Word("${A}s"), "apples");
  EXPECT_EQ(Word("$As"), "");  // the name is "As"
  EXPECT_EQ(Word("${NOPE:-dflt}"), "dflt");
  EXPECT_EQ(Word("${EMPTY:-dflt}"), "dflt");
  EXPECT_EQ(Word("${EMPTY-dflt}"), "");
  EXPECT_EQ(Word("${A:+set}"), "set");
  EXPECT_EQ(Word("${EMPTY:+set}"), "");
  EXPECT_EQ(Word("${EMPTY+set}"), "set");
  EXPECT_EQ(Word("${NOPE:-${A}}"), "apple");
  EXPECT_EQ(Word("cost: $5"), "cost: $5");
}

TEST(DockerfileExpand, QuotesAndEscapes) {
  EXPECT_EQ(Word("'$A'"), "$A");
  EXPECT_EQ(Word("\"$A pie\""), "apple pie");
  EXPECT_EQ(Word("\\$A"), "$A");
  EXPECT_EQ(Word("\"a\\\"b\""), "a\"b");
  auto words = ExpandWords("x \"y z\" $SP '' w", kVars);
  ASSERT_TRUE(words.ok());
  EXPECT_EQ(*words, (std::vector<std::string>{"x", "y z", "a", "b", "", "w"}));
}

TEST(DockerfileExpand, Errors) {
  EXPECT_FALSE(ExpandWord("'open", kVars).ok());
  EXPECT_FALSE(ExpandWord("${A", kVars).ok());
  auto e = ExpandWord("${NOPE:?must be set}", kVars);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("must be set"), std::string::npos);
}

TEST(DockerfileKeyValues, EnvForms) {
  auto kv = ParseKeyValues("A=1 B=\"two words\" C=$A", kVars, '\\', true, false);
  ASSERT_TRUE(kv.ok());
  ASSERT_EQ(kv->size(), 3u);
  EXPECT_EQ((*kv)[1].value, "two words");
  EXPECT_EQ((*kv)[2].value, "apple");
  auto legacy = ParseKeyValues("NAME some value $A", kVars, '\\', true, false);
  ASSERT_TRUE(legacy.ok());
  ASSERT_EQ(legacy->size(), 1u);
  EXPECT_EQ((*legacy)[0].value, "some value apple");
  EXPECT_FALSE(ParseKeyValues("A=1 B", kVars, '\\', true, false).ok());
}

TEST(DockerfileKeyValues, ArgWithoutValue) {
  auto kv = ParseKeyValues("VERSION", kVars, '\\', false, true);
  ASSERT_TRUE(kv.ok());
  EXPECT_FALSE((*kv)[0].has_value);
}

}  // namespace
}  // namespace layerfs
