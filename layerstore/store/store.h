// Store: the on-disk root of layerfs (layout in shared/DESIGN.md and README "Store layout").
//
//   <root>/oci-layout, index.json, blobs/sha256/<hex>   a valid OCI image layout
//   <root>/layers/<diff_id hex>/tree/                   unpacked read-only layer tree
//   <root>/layers/<diff_id hex>/index                   per-layer index (layer_index.h)
//   <root>/chains/<chain_id hex>/merged                 merged index cache (fs/index/merged_index.h)
//   <root>/lazy/<diff_id hex>/                          a layer being pulled lazily (lazy/lazy_layer.h)
//   <root>/containers/<id>/{upper,work,container.json}  writable container state
//   <root>/buildcache/                                  build cache records
//   <root>/tmp/                                         staging; everything is renamed out of it
//   <root>/lock                                         flock(2) file serialising writers
//
// Open() creates the layout if missing and, under the writer lock, sweeps tmp/ litter left by a
// crashed process and converts index.json records written with Docker media types. Every write goes to a fresh entry under tmp/ and is renamed into place.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

namespace fs = std::filesystem;

// Default root: $LAYERFS_ROOT, else /var/lib/layerfs for root, else $XDG_DATA_HOME/layerfs
// (~/.local/share/layerfs).
fs::path DefaultStoreRoot();

// An exclusive (writer) or shared (reader) flock on <root>/lock, held until destroyed.
class StoreLock {
 public:
  enum class Mode { kShared,
                    kExclusive };
  StoreLock() = default;
  StoreLock(StoreLock&& other) noexcept;
  StoreLock& operator=(StoreLock&& other) noexcept;
  ~StoreLock();
  static Result<StoreLock> Acquire(const fs::path& root, Mode mode);

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

class Store {
 public:
  // Creates the layout if needed, sweeps tmp/ and converts Docker records (only when no other
  // writer holds the lock).
  static Result<Store> Open(const fs::path& root);

  const fs::path& root() const { return root_; }
  fs::path blobs_dir() const { return root_ / "blobs" / "sha256"; }
  fs::path blob_path(const Digest& d) const { return blobs_dir() / d.hex(); }
  fs::path layers_dir() const { return root_ / "layers"; }
  fs::path layer_dir(const Digest& diff_id) const { return layers_dir() / diff_id.hex(); }
  fs::path layer_tree(const Digest& diff_id) const { return layer_dir(diff_id) / "tree"; }
  fs::path layer_index_path(const Digest& diff_id) const { return layer_dir(diff_id) / "index"; }
  fs::path lazy_dir() const { return root_ / "lazy"; }
  fs::path lazy_layer_dir(const Digest& diff_id) const { return lazy_dir() / diff_id.hex(); }
  fs::path chains_dir() const { return root_ / "chains"; }
  fs::path chain_dir(const Digest& chain_id) const { return chains_dir() / chain_id.hex(); }
  fs::path containers_dir() const { return root_ / "containers"; }
  fs::path buildcache_dir() const { return root_ / "buildcache"; }
  fs::path index_json_path() const { return root_ / "index.json"; }
  fs::path tmp_dir() const { return root_ / "tmp"; }

  // A new unique path under tmp/ (not created); prefix helps when reading litter.
  fs::path NewTempPath(const std::string& prefix) const;

  Result<StoreLock> LockExclusive() const { return StoreLock::Acquire(root_, StoreLock::Mode::kExclusive); }
  Result<StoreLock> LockShared() const { return StoreLock::Acquire(root_, StoreLock::Mode::kShared); }

 private:
  explicit Store(fs::path root) : root_(std::move(root)) {}
  fs::path root_;
};

// Writes bytes to a temp file in store.tmp_dir(), fsyncs, and renames it over dest.
Status WriteFileAtomic(const Store& store, const fs::path& dest, std::string_view bytes);
// The same through a given temp path, which must be on dest's filesystem (for files outside
// the store, e.g. a sibling of dest); the file gets `mode`.
Status WriteFileAtomicVia(const fs::path& tmp, const fs::path& dest, std::string_view bytes, mode_t mode = 0644);

}  // namespace layerfs
