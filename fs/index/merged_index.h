// MergedIndex: the lower layers of one chain merged into one immutable, flat, read-only tree.
//
// Built once per chain from the layers' LayerIndex (bottom first: whiteouts delete, opaque dirs
// hide what is below, upper layers win), persisted at <store>/chains/<chain>/merged, and loaded
// at mount with one mmap: no walk, no per-entry allocation. Format: docs/merged-index.md.
//
// Nodes are numbered breadth-first from the root (0), so each directory's children are
// contiguous and sorted by name (byte order): Lookup is a binary search of that range, readdir
// walks it, and a child's index is a stable readdir offset. A node's parent has a smaller index.
// Thread-safe: the object never changes after Build/Load.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/store.h"

namespace layerfs {

// One merged entry, 80 bytes, stored as-is in the cache file (little-endian hosts only).
struct MergedNode {
  uint32_t name_off;  // into the name table
  uint16_t name_len;
  uint8_t type;  // EntryType (never kWhiteout)
  uint8_t reserved0;
  uint16_t layer;         // index (bottom = 0) of the layer that provides this entry
  uint16_t hidden_links;  // links of this inode in its layer that the merge hides
  uint32_t parent;        // root: 0
  uint32_t first_child;   // directories: children are [first_child, first_child + child_count)
  uint32_t child_count;
  uint32_t mode;  // st_mode incl. S_IFMT
  uint32_t uid;
  uint32_t gid;
  uint32_t nlink;  // as overlayfs shows it: files, the links in the layer's tree; dirs,
                   // 2 + subdirs, or 1 when merged from several layers
  uint64_t size;
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t ino_node;  // first member of its hard-link group (itself when not linked)
  uint64_t rdev;
  uint32_t link_off;   // symlink target in the extra table, kNone if none
  uint32_t xattr_off;  // xattr block in the extra table, kNone if none
};
static_assert(sizeof(MergedNode) == 80);

class MergedIndex {
 public:
  static constexpr uint32_t kRoot = 0;
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr uint32_t kVersion = 3;

  MergedIndex();
  ~MergedIndex();
  MergedIndex(MergedIndex&&) noexcept;
  MergedIndex& operator=(MergedIndex&&) noexcept;

  // layers: bottom first; at most 65535.
  static Result<MergedIndex> Build(const std::vector<const LayerIndex*>& layers, const Digest& chain_id);
  // Maps a cache file; EINVAL "corrupt merged index <file>: <why>" when it does not validate
  // (bounds of every node checked) or does not belong to chain_id / layer_count.
  static Result<MergedIndex> Load(const std::filesystem::path& file, const Digest& chain_id,
                                  uint32_t layer_count);
  // Writes the serialized index to `file` through the store's tmp/ (atomic).
  Status Write(const Store& store, const std::filesystem::path& file) const;
  // The same outside a store: through a temp file beside `file` (unique to this process and
  // call), renamed over it, so concurrent writers of one file each leave a whole one.
  Status WriteBeside(const std::filesystem::path& file, mode_t mode) const;

  // The chain's cached index, or (missing/corrupt cache) built from the layer indexes in the
  // store and persisted. layers: diff_ids bottom first.
  static Result<MergedIndex> LoadOrBuild(const Store& store, const std::vector<Digest>& layers);
  static std::filesystem::path CachePath(const Store& store, const Digest& chain_id);

  uint32_t size() const { return count_; }
  uint32_t layer_count() const { return layer_count_; }
  const MergedNode& node(uint32_t i) const { return nodes_[i]; }
  std::string_view name(uint32_t i) const { return {names_ + nodes_[i].name_off, nodes_[i].name_len}; }
  bool is_dir(uint32_t i) const;
  std::optional<uint32_t> Lookup(uint32_t dir, std::string_view name) const;
  // "a/b/c" (no leading slash); "" or "/" is the root.
  std::optional<uint32_t> LookupPath(std::string_view path) const;
  // The image directory whose entries show through an upper directory `name` in a directory
  // showing `parent`: where it was renamed from (`redirect`, "/a/b"), else `name` in `parent`;
  // none when that is not a directory of the image.
  std::optional<uint32_t> LowerDirOf(std::optional<uint32_t> parent, std::string_view name,
                                     const std::optional<std::string>& redirect) const;
  // Relative path from the root ("" for the root).
  std::string Path(uint32_t i) const;
  std::string_view LinkTarget(uint32_t i) const;
  // Name/value pairs as stored (sorted by name).
  std::vector<std::pair<std::string_view, std::string_view>> Xattrs(uint32_t i) const;
  // Bytes the mapped index occupies (header, nodes, names, extra).
  size_t bytes() const { return bytes_; }

 private:
  struct Storage;
  Status Attach(std::unique_ptr<Storage> storage, const std::string& where);

  std::unique_ptr<Storage> storage_;
  const MergedNode* nodes_ = nullptr;
  const char* names_ = nullptr;
  const char* extra_ = nullptr;
  uint32_t count_ = 0;
  uint32_t layer_count_ = 0;
  uint64_t names_size_ = 0;
  uint64_t extra_size_ = 0;
  size_t bytes_ = 0;
  std::string chain_hex_;
};

}  // namespace layerfs
