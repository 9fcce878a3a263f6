// RunShellCommand: what the CLI tests use to run `layerfs` (and skopeo, htpasswd, ...) the way a
// user's shell would, keeping stdout and stderr apart so a test can check "one line on stderr".
#pragma once

#include <string>

namespace layerfs::testing {

struct ShellResult {
  int code = -1;  // exit status; -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs `command` with /bin/sh; its whole stderr (every part of a pipeline) lands in `err`.
ShellResult RunShellCommand(const std::string& command);

// 'text' quoted for /bin/sh.
std::string ShellQuote(const std::string& text);

}  // namespace layerfs::testing
