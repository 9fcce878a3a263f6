// OverlayOptions: the `-o` options of `layerfs overlay` / `layerfs-overlay`, parsed as
// fuse-overlayfs parses them (containers/storage runs `mount_program -o LABEL TARGET`), into a
// MountConfig of directory lowers. The table of accepted, ignored and refused options and why
// is next to the parser (overlay_options.cc) and in docs/overlay.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fs/mount/mount.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct OverlayOptions {
  MountConfig config;                // lower_dirs bottom first, upper/work, FUSE options, owner policy
  bool debug = false;                // `debug` (also -d): libfuse traces, stays in the foreground
  std::vector<std::string> ignored;  // accepted options that change nothing here (for -d)
};

// Splits one -o argument at unescaped ',' (a '\' escapes the next character, as in overlay).
std::vector<std::string> SplitOverlayOptions(std::string_view text);

// Parses the options (each "name" or "name=value", after SplitOverlayOptions) for a mount at
// mountpoint. Relative paths are made absolute (containers/storage passes paths relative to
// its cwd). EINVAL with one line naming the option on anything unknown or malformed.
Result<OverlayOptions> ParseOverlayOptions(const std::vector<std::string>& options,
                                           const std::string& mountpoint);

}  // namespace layerfs
