// DirLayer: a plain directory used as a lower layer in overlay's format (what kernel overlayfs
// and fuse-overlayfs mount, and what an upper written by `layerfs overlay` becomes), read into
// a LayerIndex so the mount engine can merge it like a store layer.
//
// The walk records exact lstat metadata, xattrs (minus overlay/layerfs private ones), symlink
// targets, devices and hard links (grouped by inode within the layer), and turns every whiteout
// and opaque form the two references read into index entries:
//   whiteout  0/0 character device NAME; empty file ".wh.NAME"; a regular file with
//             <ns>.overlay.whiteout in a directory whose <ns>.overlay.opaque is "x"
//   opaque    <ns>.overlay.opaque = "y" (<ns> trusted or user), fuse-overlayfs's
//             user.fuseoverlayfs.opaque = "y"; a ".wh..wh..opq" file
// `user.containers.override_stat` (rootless layers) gives the owner and permission bits.
// Redirect xattrs in a lower are not followed (as fuse-overlayfs): `layerfs overlay` never
// writes them (see docs/overlay.md).
//
// Lowers are walked in parallel (TBB): all layers at once, and each directory's subdirectories
// as separate tasks. Nothing is cached here; OverlayIndexCache keeps merged indexes across mounts.
#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include "fs/index/merged_index.h"
#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/layer/layer_index.h"

namespace layerfs {

class DirLayer {
 public:
  // The index of one lower directory; "<dir>: <why>" when it cannot be read.
  static Result<LayerIndex> Walk(const std::filesystem::path& dir);
  // Changes an entry of lower `layer` (bottom first) after the walk, before the merge.
  using EntryFix = std::function<void(size_t layer, LayerEntry* entry)>;
  // Gives one lower's index; unset: Walk. (A store layer's tree has no whiteouts: its index does.)
  using LowerReader = std::function<Result<LayerIndex>(const std::filesystem::path& dir)>;
  // Reads the lowers (bottom first) in parallel and merges them.
  static Result<MergedIndex> BuildMerged(const std::vector<std::filesystem::path>& lowers, const EntryFix& fix = {},
                                         const LowerReader& reader = {});
  // sha256 of the absolute lower paths (bottom first): the chain id of a directory stack.
  static Digest ChainId(const std::vector<std::filesystem::path>& lowers);
};

}  // namespace layerfs
