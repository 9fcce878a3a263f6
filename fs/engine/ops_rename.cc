// rename(2) in the merged view, with RENAME_NOREPLACE and RENAME_EXCHANGE.
//
// Both parents and the source are copied up (a lower directory only as an empty directory:
// its children stay in the lowers), then the upper entries are renamed. A renamed lower
// directory records where its lower children live with overlay's redirect xattr (absolute
// path), so it works without EXDEV and without copying the subtree; in overlay mode
// (rename_copies_subtree) its whole subtree is copied up and it is made opaque instead, so the
// upper needs no redirect to be read as an upper or a lower by any overlay implementation.
// A name that had a lower entry gets a whiteout (RENAME_WHITEOUT: in the same atomic step
// where the host allows it).
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <unistd.h>

#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

struct RenameSide {
  std::shared_ptr<Node> dir;
  std::string name;
  std::shared_ptr<Node> node;  // null: the name does not exist in the merged view
};

// Two names of one inode. Members of a lower hard-link group are separate nodes but one file
// (copied up together), like names of one upper inode (one node).
bool SameFile(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b, const MergedIndex& index) {
  if (a == b) return true;
  if (a->is_dir || b->is_dir || a->lower == kNoLower || b->lower == kNoLower) return false;
  return index.node(a->lower).nlink > 1 && index.node(a->lower).ino_node == index.node(b->lower).ino_node;
}

}  // namespace

void LayerFs::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                     const char* newname, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
  RenameSide src{Shared(parent), name, nullptr};
  RenameSide dst{Shared(newparent), newname, nullptr};
  int r = LookupChild(src.dir, src.name, &src.node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  r = LookupChild(dst.dir, dst.name, &dst.node);
  if (r != 0 && r != -ENOENT) {
    table_.Forget(src.node.get(), 1);
    return (void)fuse_reply_err(req, -r);
  }
  r = RenameChecked(src.dir, src.name, src.node, dst.dir, dst.name, dst.node, flags);
  table_.Forget(src.node.get(), 1);
  if (dst.node) table_.Forget(dst.node.get(), 1);
  fuse_reply_err(req, -r);
}

int LayerFs::RenameChecked(const std::shared_ptr<Node>& sdir, const std::string& sname, const std::shared_ptr<Node>& snode,
                           const std::shared_ptr<Node>& ddir, const std::string& dname, const std::shared_ptr<Node>& dnode,
                           unsigned flags) {
  bool exchange = flags & RENAME_EXCHANGE;
  if ((flags & RENAME_NOREPLACE) && dnode) return -EEXIST;
  if (exchange && !dnode) return -ENOENT;
  if (UpperFormat::IsWhiteoutFileName(dname)) return -EINVAL;
  if (dnode && SameFile(snode, dnode, index_)) return 0;  // two links of one file: POSIX says do nothing
  if (dnode && !exchange) {
    if (snode->is_dir && !dnode->is_dir) return -ENOTDIR;
    if (!snode->is_dir && dnode->is_dir) return -EISDIR;
    if (dnode->is_dir) {
      if (int r = IsMergedDirEmpty(dnode); r != 0) return r;
    }
  }
  for (const auto* n : {&sdir, &ddir, &snode})
    if (int r = EnsureUpper(*n); r != 0) return r;
  // Replacing a lower hard link: its other links must see nlink drop (as unlink does).
  if (dnode && !exchange && !dnode->is_dir && !dnode->upper.load() && index_.node(dnode->lower).nlink > 1)
    if (int r = EnsureUpper(dnode); r != 0) return r;
  if (exchange)
    if (int r = EnsureUpper(dnode); r != 0) return r;
  if (int r = PrepareMovedDir(snode, ddir, dname); r != 0) return r;
  if (exchange)
    if (int r = PrepareMovedDir(dnode, sdir, sname); r != 0) return r;

  int sfd = sdir->dir_fd.load(), dfd = ddir->dir_fd.load();
  struct stat st;
  bool whiteout = false;
  bool dst_upper = format_.StatChild(dfd, dname, &st, &whiteout) == 0;
  // The replaced file lives on under its other names (hard links): its node keeps its key.
  bool dst_last_link = !dst_upper || whiteout || S_ISDIR(st.st_mode) || st.st_nlink <= 1;
  if (!exchange && dst_upper && (S_ISDIR(st.st_mode) || (whiteout && snode->is_dir))) {
    // An empty-in-the-merge directory still holds whiteouts; a directory cannot replace a
    // whiteout chardev. Clear the way (the source then covers any lower entry there).
    if (int r = RemoveUpperTree(dfd, dname); r != 0) return r;
  }
  bool need_whiteout = !exchange && LowerChild(sdir.get(), sname).has_value();
  if (exchange) {
    if (::renameat2(sfd, sname.c_str(), dfd, dname.c_str(), RENAME_EXCHANGE) != 0) return -errno;
  } else if (!need_whiteout || ::renameat2(sfd, sname.c_str(), dfd, dname.c_str(), RENAME_WHITEOUT) != 0) {
    if (need_whiteout && errno != EINVAL && errno != EPERM) return -errno;
    if (::renameat(sfd, sname.c_str(), dfd, dname.c_str()) != 0) return -errno;
    if (need_whiteout)
      if (int r = format_.CreateWhiteout(sfd, sname); r != 0) return r;
  }
  format_.RemoveWhiteoutFile(dfd, dname);
  if (dnode && !exchange && dst_last_link) table_.Detach(dnode.get());
  snode->SetLocation(ddir, dname);
  if (exchange) dnode->SetLocation(sdir, sname);
  if (int r = SyncDirChange(sfd); r != 0) return r;
  if (dfd != sfd)
    if (int r = SyncDirChange(dfd); r != 0) return r;
  Invalidate(sdir.get(), false);  // a GETATTR in flight must not re-cache the old attributes
  if (ddir != sdir) Invalidate(ddir.get(), false);
  return 0;
}

// A directory about to appear at ddir/dname: if it merges lower children, record where they
// are (redirect); if it does not but a lower entry exists at the destination, hide that one
// (opaque), as overlayfs does.
int LayerFs::PrepareMovedDir(const std::shared_ptr<Node>& node, const std::shared_ptr<Node>& ddir, const std::string& dname) {
  if (!node->is_dir) return 0;
  int fd = node->dir_fd.load();
  if (node->lower != kNoLower && !options_.rename_copies_subtree)
    return format_.SetRedirect(fd, "", "/" + index_.Path(node->lower));
  if (node->lower != kNoLower) {
    if (int r = CopyUpSubtree(node); r != 0) return r;
    return format_.SetOpaque(fd, "");
  }
  if (LowerChild(ddir.get(), dname)) return format_.SetOpaque(fd, "");
  return 0;
}

// Every entry visible under dir gets an upper copy (directories recursively), so dir, once
// opaque, shows the same tree without its lower source. Whiteouts already there stay: they
// keep hiding what this mount's index still has below the old path.
int LayerFs::CopyUpSubtree(const std::shared_ptr<Node>& dir) {
  const MergedNode& n = index_.node(dir->lower);
  for (uint32_t c = n.first_child; c < n.first_child + n.child_count; ++c) {
    std::shared_ptr<Node> child;
    int r = LookupChild(dir, std::string(index_.name(c)), &child);
    if (r == -ENOENT) continue;  // whited out
    if (r != 0) return r;
    r = EnsureUpper(child);
    if (r == 0 && child->is_dir && child->lower != kNoLower) r = CopyUpSubtree(child);
    table_.Forget(child.get(), 1);
    if (r != 0) return r;
  }
  // The upper copy now holds every visible entry: stop merging the lower directory, then drop
  // the whiteouts (kernel overlayfs lists them in a directory that merges nothing).
  dir->lower = kNoLower;
  return RemoveWhiteouts(dir->dir_fd.load());
}

int LayerFs::RemoveWhiteouts(int dirfd) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
  if (d == nullptr) {
    if (fd >= 0) ::close(fd);
    return -errno;
  }
  int r = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    struct stat st;
    bool whiteout = false;
    if (name == "." || name == ".." || format_.StatChild(dirfd, name, &st, &whiteout) != 0) continue;
    if ((whiteout || (UpperFormat::IsWhiteoutFileName(name) && S_ISREG(st.st_mode))) &&
        ::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT)
      r = -errno;
  }
  ::closedir(d);
  return r;
}

}  // namespace layerfs
