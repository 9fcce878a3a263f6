// OverlayIndexCache: the merged index of a stack of plain lower directories (`layerfs overlay`)
// kept in a cache directory and mapped at the next mount of the same stack, as `layerfs mount`
// maps its chain's index: a mount is a load, not a walk, and every daemon of one image shares
// the index's pages in the page cache instead of holding a copy of its own.
//
// A cache file is named after the stack's identity: each lower's canonical path and the device,
// inode, ctime and mtime of its root directory. A lower that is replaced, re-created or changed
// at its top gets a new name; a change deep inside a lower does not (lowers of a cached stack
// are taken as immutable between mounts, as containers/storage's committed layers are:
// docs/overlay.md). A file that does not validate (truncated, corrupt, another stack's) is
// rebuilt, never trusted. Files are written whole through a temp file and a rename, so
// concurrent first mounts of one stack each build and each leave a complete file.
#pragma once

#include <filesystem>
#include <vector>

#include "fs/index/dir_layer.h"
#include "fs/index/merged_index.h"
#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

class OverlayIndexCache {
 public:
  // dir is created (mode 0700: the files list the lowers' names) when the first file is written.
  explicit OverlayIndexCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // $LAYERFS_INDEX_CACHE; else /var/cache/layerfs/overlay-index as root, and
  // $XDG_CACHE_HOME/layerfs/overlay-index (~/.cache/...) for other users.
  static std::filesystem::path DefaultDir();
  // The identity of a stack (lowers canonical, bottom first); "<dir>: <why>" when a root
  // cannot be stat'ed.
  static Result<Digest> Key(const std::vector<std::filesystem::path>& lowers);

  // The stack's cached index, or one built by DirLayer::BuildMerged (with `reader`) and then
  // stored (a cache that cannot be written costs only the next mount its walk). *hit: whether
  // it was cached.
  Result<MergedIndex> LoadOrBuild(const std::vector<std::filesystem::path>& lowers, bool* hit = nullptr,
                                  const DirLayer::LowerReader& reader = {}) const;
  std::filesystem::path FileOf(const Digest& key) const { return dir_ / key.hex(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace layerfs
