// LazyLowers: lower layers of a mount whose file data arrives while the mount serves (lazy
// pull, docs/lazy-pull.md). Their index is complete from the start; a regular file's bytes may
// still be a hole in the layer tree. The engine therefore calls Ensure before it reads bytes of
// a lower regular file of a lazy layer (for the whole file before a copy-up or a SEEK_DATA /
// SEEK_HOLE), answers EIO when it fails, and binds no passthrough backing file to such a file
// (the kernel would read the holes as zeros). The engine knows nothing of registries: fs/mount
// implements this over LazyLayer.
#pragma once

#include <cstdint>
#include <string>

#include "layerstore/layer/layer_index.h"

namespace layerfs {

class LazyLowers {
 public:
  virtual ~LazyLowers() = default;
  // Whether layer (bottom = 0) was lazy when the mount started; fixed for the mount's life,
  // so every open of one inode is served the same way.
  virtual bool IsLazy(uint32_t layer) const = 0;
  // A lazy layer's index and the directory holding its tree.
  virtual const LayerIndex& Index(uint32_t layer) const = 0;
  virtual std::string TreeDir(uint32_t layer) const = 0;
  // Blocks until bytes [offset, offset + length) of `path` (relative, in the layer) are in
  // the tree, clipped to the file's size; 0 or an errno. Runs on FUSE worker threads, many at
  // once.
  virtual int Ensure(uint32_t layer, const std::string& path, uint64_t offset, uint64_t length) = 0;
};

}  // namespace layerfs
