// DockerIgnore: the .dockerignore of a build context, matched the way Docker matches it.
//
// One pattern per line; blank lines and lines starting with '#' are ignored; a leading '!'
// makes an exception; a leading '/' is dropped (patterns are relative to the context root).
// `*` and `?` match within one path component, `[...]` is a character class, `**` matches any
// number of components (also none), the escape character '\' makes the next one literal.
// A pattern matches a path when it matches the path or one of its parent directories; the last
// pattern that matches decides (an exception re-includes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

class DockerIgnore {
 public:
  static Result<DockerIgnore> Parse(std::string_view text);
  // <context>/.dockerignore; a missing file excludes nothing.
  static Result<DockerIgnore> Load(const std::filesystem::path& context_dir);

  // rel_path: relative to the context root, components joined by '/', no leading "./".
  bool Excluded(std::string_view rel_path) const;
  bool empty() const { return patterns_.empty(); }
  // True when some exception could re-include a path below the (excluded) directory `dir`, so
  // a walk must still descend into it.
  bool MayReinclude(std::string_view dir) const;

 private:
  // One element of a compiled pattern. Matching simulates all positions at once (no
  // backtracking), so time is linear in path length times pattern length whatever the pattern.
  struct GlobToken {
    enum Kind : uint8_t {
      kLiteral,  // `c`
      kAnyChar,  // ?: one character but '/'
      kStar,     // *: any characters but '/'
      kAnyPath,  // **: any characters
      kAnyDirs,  // the "**" of "**/": any characters, then the next token ('/') or skip both
      kClass,    // [...]: one character of `chars`/`ranges` (or not, when negated)
    } kind = kLiteral;
    char c = 0;
    bool negated = false;
    std::string chars;
    std::vector<std::pair<char, char>> ranges;
  };
  struct Pattern {
    std::string text;
    std::vector<GlobToken> tokens;
    bool exception = false;
  };
  static Result<std::vector<GlobToken>> Compile(const std::string& pattern);
  static Result<GlobToken> CompileClass(std::string_view inside);
  static bool Matches(const std::vector<GlobToken>& tokens, std::string_view path);
  std::vector<Pattern> patterns_;
};

}  // namespace layerfs
