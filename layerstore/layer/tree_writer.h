// TreeWriter: the second stage of unpacking. Turns tar entries (read by libarchive) into files
// under a layer's tree directory and into LayerIndex entries.
//
// Containment: an entry's parent directories may be symlinks the layer wrote earlier; they are
// followed as containerd does (fs.RootPath), scoped to the layer root: an absolute target
// starts at the layer root and ".." stops there, so "/etc" or "../../.." never leave the tree.
// The resolution happens here, over the layer's own entries (the tree holds nothing else), and
// the entry is indexed under the resolved path; the tree is then opened with openat2
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a component walk with O_NOFOLLOW), so the kernel
// refuses anything our resolution missed. The last component is never followed (a new entry
// replaces a symlink). Entry names with ".." components are refused; absolute names are taken
// relative to the layer root. Hard links must point to an entry the layer already wrote.
//
// Later entries of the same path replace earlier ones (a directory replacing a directory is
// merged). Directories' modes, owners, xattrs and mtimes are applied by Finish(), deepest
// first, once their children exist. Device nodes and sockets are always indexed; the tree gets
// devices only as root (and only where mknod is permitted) and never sockets. chown happens
// only as root; xattrs the tree's filesystem refuses are kept in the index only.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "layerstore/base/status.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/layer/layer_index.h"

namespace layerfs {

class TreeWriter {
 public:
  // tree_fd: the (empty) tree directory, borrowed for the writer's lifetime.
  TreeWriter(int tree_fd, LayerIndex* index);

  // Writes one entry; reads its data from `a`. The error names the entry.
  Status Add(archive* a, archive_entry* e);
  // The same for an entry whose data is not at hand (a lazy layer's, from its table of
  // contents): a regular file gets its size, all of it a hole, for the data to come later.
  Status AddWithoutData(archive_entry* e) { return Add(nullptr, e); }
  // Applies directory metadata and moves the sorted entries into the index.
  Status Finish();

 private:
  Status AddEntry(archive* a, archive_entry* e, const std::string& raw_path);
  Status AddDirectory(int dir_fd, const std::string& name, LayerEntry entry);
  Status AddRegular(archive* a, int dir_fd, const std::string& name, LayerEntry entry);
  Status AddSymlink(int dir_fd, const std::string& name, LayerEntry entry);
  Status AddSpecial(int dir_fd, const std::string& name, LayerEntry entry);
  Status AddHardlink(int dir_fd, const std::string& name, const LayerEntry& entry, const char* target);
  Status AddWhiteout(const std::string& dir, const std::string& name, LayerEntry entry);
  Status MarkOpaque(const std::string& dir, const LayerEntry& marker);

  // The directory `dir` (relative, "" = tree root) as a borrowed fd, creating missing parents.
  Result<int> DirFd(const std::string& dir);
  Result<UniqueFd> OpenDirBeneath(const std::string& dir, bool create) const;
  // Clears `name` in dir_fd for a new entry; keeps an existing directory if keep_dir.
  Status MakeRoom(int dir_fd, const std::string& name, bool keep_dir);
  // mode_set: the file was created with exactly e.mode (CreatedExactly), no chmod needed.
  Status ApplyMetadata(int fd, const LayerEntry& e, bool mode_set = false) const;
  bool CreatedExactly(mode_t mode) const;
  bool OwnedAlready(const LayerEntry& e) const { return e.uid == euid_ && e.gid == egid_; }
  Status ApplyMetadataAt(int dir_fd, const std::string& name, const LayerEntry& e) const;

  // `dir` (normalised, relative) with every symlink component resolved inside the layer root.
  Result<std::string> ResolveDir(const std::string& dir) const;

  void Record(LayerEntry entry);
  void DropBelow(const std::string& dir);

  int tree_fd_;
  LayerIndex* index_;
  bool root_;
  // What a new file gets without a chown or chmod (most entries of an image: root's, 0644 or
  // 0755): the process's uid, its gid or a set-group-ID tree root's, the create mode less the
  // umask. umask_ is 0777 (always chmod) when it cannot be read or the tree root has a default
  // ACL (which decides new modes instead).
  uid_t euid_;
  gid_t egid_;
  mode_t umask_;
  std::vector<LayerEntry> entries_;
  std::vector<bool> dead_;
  std::unordered_map<std::string, size_t> by_path_;
  uint32_t next_group_ = 1;
  std::string cached_dir_;  // one-slot cache: tar entries come grouped by directory
  UniqueFd cached_fd_;
};

}  // namespace layerfs
