// Namespace operations: mknod, symlink, link, unlink, rename, and the upper-side helpers that
// create and delete names (whiteouts, opaque directories) for them and for mkdir/rmdir/create.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <unistd.h>

#include <sys/xattr.h>

#include "fs/engine/layer_fs.h"
#include "fs/engine/posix_acl.h"

namespace layerfs {

int LayerFs::NewEntryImpl(fuse_req_t req, const std::shared_ptr<Node>& dir, const std::string& name, mode_t mode,
                          const std::function<int(int, const std::string&)>& make, std::shared_ptr<Node>* out) {
  if (UpperFormat::IsWhiteoutFileName(name)) return -EINVAL;  // reserved for whiteouts
  int r = EnsureUpper(dir);
  if (r != 0) return r;
  int dfd = dir->dir_fd.load(std::memory_order_acquire);
  struct stat st;
  bool whiteout = false;
  r = format_.StatChild(dfd, name, &st, &whiteout);
  if (r == 0 && !whiteout) return -EEXIST;
  if (r != 0 && r != -ENOENT) return r;
  bool lower = LowerChild(dir.get(), name).has_value();
  bool wh_file = lower && format_.HasWhiteoutFile(dfd, name);
  if (lower && !whiteout && !wh_file) return -EEXIST;
  if (whiteout || wh_file) {
    // The name was deleted from a lower layer: build the entry in work/ and swap it in, so
    // the old lower entry never shows through; a directory hides the lower one (opaque).
    std::string tmp = NewWorkName();
    r = make(work_fd_, tmp);
    if (r == 0 && S_ISDIR(mode)) r = format_.SetOpaque(work_fd_, tmp);
    if (r == 0 && mode != 0) r = SetNewOwner(req, dir.get(), work_fd_, tmp, mode, S_ISDIR(mode));
    if (r == 0) r = InstallFromWork(dfd, name, tmp, whiteout);
    if (r != 0) {
      RemoveUpperTree(work_fd_, tmp);
      return r;
    }
  } else {
    r = make(dfd, name);
    if (r == 0 && mode != 0) r = SetNewOwner(req, dir.get(), dfd, name, mode, S_ISDIR(mode));
    if (r != 0) return r;
  }
  if (int synced = SyncDirChange(dfd); synced != 0) return synced;
  Invalidate(dir.get(), false);  // a GETATTR in flight must not re-cache the old attributes
  if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  *out = NodeForUpper(dir, name, st);
  return *out ? 0 : -EIO;
}

// The daemon creates as itself: hand the entry to the caller (BSD group semantics of a setgid
// directory included), on the file where owners live there (OwnerStore). Root of a user
// namespace falls back to the override xattr for an id it does not map. In the xattr the host
// copy stays usable by us (u+rw), and the caller and true mode are recorded unless the host
// copy already shows them (always with force_mask, as fuse-overlayfs records every entry).
int LayerFs::SetNewOwner(fuse_req_t req, Node* dir, int dirfd, const std::string& name, mode_t mode, bool is_dir) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  uid_t uid = ctx->uid;
  gid_t gid = ctx->gid;
  ToStoredOwner(&uid, &gid);
  bool link = S_ISLNK(mode);
  struct stat parent;
  if (int r = Attr(dir, &parent); r != 0) return r;
  if (parent.st_mode & S_ISGID) gid = parent.st_gid;
  if (is_dir && (parent.st_mode & S_ISGID)) mode |= S_ISGID;
  // With ACLs on, the kernel leaves the umask to us (DONT_MASK), wherever the owner goes.
  std::string access_acl, default_acl;
  bool inherits = posix_acl_ && !link && InheritAcl(req, dir, &mode, &access_acl, &default_acl);
  if (owner_store_ != OwnerStore::kXattr) {
    if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!link && ::fchmodat(dirfd, name.c_str(), mode & 07777, 0) != 0) return -errno;
      if (inherits) return SetNewEntryAcls(dirfd, name, access_acl, is_dir ? default_acl : "");
      return 0;
    }
    if (owner_store_ == OwnerStore::kHost) return -errno;
  }
  if (link) return 0;  // keeps the daemon's ids: a symlink cannot hold a user.* xattr
  mode_t host = (mode & 07777) | (is_dir ? 0700 : 0600);
  if (::fchmodat(dirfd, name.c_str(), host, 0) != 0) return -errno;
  bool host_shows_it = host == (mode & 07777) && (S_ISREG(mode) || S_ISDIR(mode)) && uid == ::geteuid() &&
                       gid == ::getegid() && options_.xattr_permissions == 0;
  if (host_shows_it) return 0;
  int r = format_.SetOverride(dirfd, name, {uid, gid, mode});
  // A fifo or socket cannot hold a user.* xattr: it keeps the daemon's ids (fuse-overlayfs
  // ignores that refusal too) rather than failing mkfifo.
  if (r == -EPERM && !privileged() && !S_ISREG(mode) && !S_ISDIR(mode)) return 0;
  return r;
}

// FUSE_CAP_POSIX_ACL with DONT_MASK: the kernel sends the creator's mode unmasked and leaves
// the rest to us, as a local filesystem does it: under a directory with a default ACL the new
// inode's ACL and mode come from that ACL (a directory also inherits it as its own default),
// and true says so; elsewhere the creator's umask applies (false: no ACL to set, and none the
// host could have given the entry, as the upper directory has no default ACL either).
bool LayerFs::InheritAcl(fuse_req_t req, Node* dir, mode_t* mode, std::string* access_acl, std::string* default_acl) {
  if (ReadXattr(dir, kAclDefaultXattr, default_acl) == 0 && !default_acl->empty() &&
      InheritDefaultAcl(*default_acl, mode, access_acl))
    return true;
  *mode &= ~fuse_req_ctx(req)->umask;
  return false;
}

// Set after the mode (a chmod rewrites the ACL's mask). The host may have given the entry its
// own copy of the upper directory's default ACL already (entries made in place); it is replaced
// or removed so the entry holds exactly what InheritAcl computed.
int LayerFs::SetNewEntryAcls(int dirfd, const std::string& name, const std::string& access_acl,
                             const std::string& default_acl) {
  std::string path = UpperFormat::FdPath(dirfd, name);
  for (const auto& [xattr, value] : {std::pair{kAclAccessXattr, &access_acl}, std::pair{kAclDefaultXattr, &default_acl}}) {
    if (value->empty()) {
      // ENODATA: nothing inherited; EACCES: a file cannot hold a default ACL.
      if (::removexattr(path.c_str(), xattr) != 0 && errno != ENODATA && errno != EACCES) return -errno;
    } else if (::setxattr(path.c_str(), xattr, value->data(), value->size(), 0) != 0) {
      return -errno;
    }
  }
  return 0;
}

// With a 0/0 whiteout in place, RENAME_EXCHANGE swaps atomically (a directory cannot replace a
// non-directory by plain rename) and the whiteout, now in work/, is deleted.
int LayerFs::InstallFromWork(int dirfd, const std::string& name, const std::string& work_name, bool replace_whiteout) {
  if (replace_whiteout) {
    if (::renameat2(work_fd_, work_name.c_str(), dirfd, name.c_str(), RENAME_EXCHANGE) != 0) return -errno;
    ::unlinkat(work_fd_, work_name.c_str(), 0);
  } else if (::renameat2(work_fd_, work_name.c_str(), dirfd, name.c_str(), RENAME_NOREPLACE) != 0) {
    return -errno;
  }
  format_.RemoveWhiteoutFile(dirfd, name);
  return 0;
}

int LayerFs::RemoveUpperTree(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0) return 0;
  if (errno != EISDIR && errno != EPERM) return errno == ENOENT ? 0 : -errno;
  int unlink_err = errno;  // EPERM: a directory, or an immutable / append-only file
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOTDIR ? -unlink_err : -errno;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return -errno;
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d))
    if (std::string n = e->d_name; n != "." && n != "..") names.push_back(n);
  int r = 0;
  for (const auto& n : names)
    if (r == 0) r = RemoveUpperTree(::dirfd(d), n);
  ::closedir(d);
  if (r == 0 && ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) r = -errno;
  return r;
}

int LayerFs::SyncDirChange(int dirfd) {
  if (!options_.dirsync || !options_.sync_upper) return 0;  // volatile: no syncs at all
  return ::fsync(dirfd) == 0 ? 0 : -errno;
}

// Removes dir/name from the merged view: the upper copy goes, and if a lower entry of that
// name would show through, a whiteout takes its place (atomically where mknod is allowed).
int LayerFs::DeleteEntry(const std::shared_ptr<Node>& dir, const std::string& name, bool is_dir) {
  int r = EnsureUpper(dir);
  if (r != 0) return r;
  int dfd = dir->dir_fd.load(std::memory_order_acquire);
  bool lower = LowerChild(dir.get(), name).has_value();
  struct stat st;
  bool whiteout = false;
  bool in_upper = format_.StatChild(dfd, name, &st, &whiteout) == 0 && !whiteout;
  if (!lower) return in_upper ? RemoveUpperTree(dfd, name) : 0;
  if (!in_upper) return format_.CreateWhiteout(dfd, name);
  std::string tmp = NewWorkName();
  if (::mknodat(work_fd_, tmp.c_str(), S_IFCHR | 0000, 0) == 0) {
    int how = is_dir ? RENAME_EXCHANGE : 0;
    if (::renameat2(work_fd_, tmp.c_str(), dfd, name.c_str(), how) != 0) {
      r = -errno;
      ::unlinkat(work_fd_, tmp.c_str(), 0);
      return r;
    }
    return is_dir ? RemoveUpperTree(work_fd_, tmp) : 0;
  }
  if (int r2 = RemoveUpperTree(dfd, name); r2 != 0) return r2;
  return format_.CreateWhiteout(dfd, name);
}

void LayerFs::MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  std::shared_ptr<Node> node;
  auto make = [&](int dirfd, const std::string& n) {
    return ::mknodat(dirfd, n.c_str(), (mode & S_IFMT) | 0600, rdev) == 0 ? 0 : -errno;
  };
  int r = NewEntry(req, Shared(parent), name, mode, make, &node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  ReplyEntry(req, node);
}

void LayerFs::SymLink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Node> node;
  auto make = [&](int dirfd, const std::string& n) { return ::symlinkat(target, dirfd, n.c_str()) == 0 ? 0 : -errno; };
  int r = NewEntry(req, Shared(parent), name, S_IFLNK | 0777, make, &node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  ReplyEntry(req, node);
}

// A lower file is copied up first and the link made in the upper; both names then share the
// upper inode (and, through the origin xattr, the lower st_ino).
void LayerFs::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Node> src = Shared(ino);
  int r = EnsureUpper(src);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  UpperRef ref = RefOf(src.get());
  std::shared_ptr<Node> node;
  auto make = [&](int dirfd, const std::string& n) {
    return ::linkat(AT_FDCWD, ref.path().c_str(), dirfd, n.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
  };
  r = NewEntry(req, Shared(parent), name, 0 /* keep owner and mode */, make, &node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  ReplyEntry(req, node);
}

void LayerFs::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Node> dir = Shared(parent);
  std::shared_ptr<Node> child;
  int r = LookupChild(dir, name, &child);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  bool last_link = true;
  if (child->is_dir) {
    r = -EISDIR;
  } else if (!child->upper.load() && index_.node(child->lower).nlink > 1) {
    // The other links must see nlink drop: copy the group up first (overlayfs with index=on
    // does the same through its index).
    r = EnsureUpper(child);
    last_link = false;
  } else if (child->upper.load()) {
    struct stat st;
    if (::fstatat(dir->dir_fd.load(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) last_link = st.st_nlink <= 1;
  }
  if (r == 0) r = DeleteEntry(dir, name, false);
  if (r == 0) r = SyncDirChange(dir->dir_fd.load());
  if (r == 0) Invalidate(dir.get(), false);  // a GETATTR in flight must not re-cache the old attributes
  if (r == 0 && last_link) table_.Detach(child.get());
  table_.Forget(child.get(), 1);
  fuse_reply_err(req, -r);
}

}  // namespace layerfs
