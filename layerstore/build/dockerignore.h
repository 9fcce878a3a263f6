// DockerIgnore: the .dockerignore of a build context, matched the way Docker matches it.
//
// One pattern per line; blank lines and lines starting with '#' are ignored; a leading '!'
// makes an exception; a leading '/' is dropped (patterns are relative to the context root).
// `*` and `?` match within one path component, `[...]` is a character class, `**` matches any
// number of components (also none), the escape character '\' makes the next one literal.
// A pattern matches a path when it matches the path or one of its parent directories; the last
// pattern that matches decides (an exception re-includes).
#pragma once

#include <filesystem>
#include <regex>
#include <string>
#include <string_view>
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
  struct Pattern {
    std::string text;
    std::regex re;
    bool exception = false;
  };
  std::vector<Pattern> patterns_;
};

}  // namespace layerfs
