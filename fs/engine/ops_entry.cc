// Entry and attribute operations: init, lookup, forget, getattr, setattr, readlink, statfs.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/engine/file_handle.h"
#include "fs/engine/layer_fs.h"

namespace layerfs {

// Tuning (mergerfs style, each knob beside its reason):
// - max_write 1 MiB: fewer, larger WRITE requests (kernel default is 128 KiB; libfuse 3.14
//   negotiates up to 256 pages).
// - max_readahead 1 MiB: sequential reads of layer files arrive in large requests.
// - splice write: READ replies are file descriptors (fuse_reply_data), moved into /dev/fuse by
//   splice instead of being copied through a buffer.
// - no writeback cache: upper attributes must stay exact (timeout 0), which writeback caching
//   would defeat; lower files use keep_cache instead.
// - parallel dirops: lookups and readdirs in one directory run concurrently (the index needs
//   no lock).
// - FUSE passthrough where the kernel, libfuse and our capabilities allow it (fs/engine/passthrough.h);
//   it excludes writeback caching, which is off anyway.
void LayerFs::Init(fuse_conn_info* conn) {
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (options_.no_open) {
    // O_TRUNC then arrives as a SETATTR (the kernel would leave it to the OPEN it skips), and
    // passthrough, which binds its file in an OPEN reply, stays off.
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
  } else {
    passthrough_.Negotiate(conn);
  }
  // POSIX ACLs, as root: the kernel enforces them and applies no umask (DONT_MASK); the
  // daemon stores them on the upper's host filesystem (which keeps the mode in sync when one
  // is set) and does default-ACL inheritance and the umask (SetNewOwner). Rootless the upper's
  // ACLs would name host ids and the override xattr cannot hold them: no ACLs (docs/upper-format.md).
  const uint64_t acl_caps = FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  if (options_.posix_acl && privileged() && (conn->capable & acl_caps) == acl_caps) {
    conn->want |= acl_caps;
    posix_acl_ = true;
  }
  // READDIRPLUS, auto mode: a listing brings its entries' nodes and attributes (ops_dir.cc).
  const uint64_t plus = FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
  if ((conn->capable & plus) == plus) conn->want |= plus;
  // Zero-message opendir: listings need no handle (ops_dir.cc), and without one the kernel
  // also caches every listing (cache_readdir + keep_cache) until the directory changes.
  if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
    conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
    no_opendir_ = true;
  }
  RefuseFileHandles(conn);
}

// Node ids are Node addresses, meaningless once the kernel forgets the inode, so a file handle
// could not be decoded later: none are offered (name_to_handle_at says EOPNOTSUPP), as kernel
// overlayfs without nfs_export. Needs libfuse >= 3.17 and Linux >= 6.9; older ones encode
// handles without asking us (docs/upper-format.md).
void LayerFs::RefuseFileHandles(fuse_conn_info* conn) {
#ifdef FUSE_CAP_NO_EXPORT_SUPPORT
  if (conn->capable & FUSE_CAP_NO_EXPORT_SUPPORT) conn->want |= FUSE_CAP_NO_EXPORT_SUPPORT;
#endif
}

void LayerFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Node> dir = Shared(parent);
  std::shared_ptr<Node> child;
  int r = LookupChild(dir, name, &child);
  if (r == 0) return ReplyEntry(req, child);
  if (r == -ENOENT) {
    // No directory gains a name without the kernel seeing the operation that made it, so
    // the negative answer may be cached as long as the directory's own entry.
    fuse_entry_param e{};
    e.entry_timeout = EntryTimeout(dir.get());
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_reply_err(req, -r);
}

void LayerFs::Forget(fuse_ino_t ino, uint64_t nlookup) {
  if (ino != FUSE_ROOT_ID) table_.Forget(ToNode(ino), nlookup);
}

void LayerFs::ForgetMulti(size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Forget(forgets[i].ino, forgets[i].nlookup);
}

namespace {

// The upper fd of the open file a GETATTR or SETATTR names, or -1 (none named, a handle on the
// lower file, or no_open's handle-less opens).
int UpperFdOf(const fuse_file_info* fi) {
  return fi != nullptr && fi->fh != 0 ? reinterpret_cast<FileHandle*>(fi->fh)->UpperFd() : -1;
}

}  // namespace

void LayerFs::GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node* node = ToNode(ino);
  struct stat st;
  int fd = UpperFdOf(fi);
  int r = Attr(node, &st, fd);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  Show(&st);
  fuse_reply_attr(req, &st, Timeout(node));
}

LayerFs::UpperRef LayerFs::RefOf(Node* node) {
  return UpperRef{node->is_dir ? node->dir_fd.load(std::memory_order_acquire) : node->file_fd.load(std::memory_order_acquire)};
}

namespace {

// Whether the owner and mode live on the upper's file itself: always as host root; as root of a
// user namespace unless the entry already keeps them in the override xattr (Attr reads it first).
bool OnHostFile(const UpperFormat& format, OwnerStore store, const LayerFs::UpperRef& ref) {
  if (store == OwnerStore::kHost) return true;
  return store == OwnerStore::kHostOrXattr && !format.Override(ref.fd, "").has_value();
}

int ApplyMode(const UpperFormat& format, OwnerStore store, const LayerFs::UpperRef& ref, mode_t mode,
              const struct stat& cur) {
  if (OnHostFile(format, store, ref)) return ::chmod(ref.path().c_str(), mode & 07777) == 0 ? 0 : -errno;
  // In the xattr: keep the host copy usable by us; the true mode lives in the override xattr.
  mode_t host = (mode & 07777) | (S_ISDIR(cur.st_mode) ? 0700 : 0600);
  if (::chmod(ref.path().c_str(), host) != 0) return -errno;
  return format.SetOverride(ref.fd, "", {cur.st_uid, cur.st_gid, (cur.st_mode & S_IFMT) | (mode & 07777)});
}

// As fuse-overlayfs: a chown on the file where that is how this mount keeps owners; as root of a
// user namespace, an id the namespace does not map (EINVAL) goes to the override xattr instead,
// except on a symlink, which cannot hold a user.* xattr: there chown's own answer stands, as in
// fuse-overlayfs. With xattr_permissions=2 a symlink's chown succeeds without changing it
// (fuse-overlayfs ignores the EPERM of its xattr there).
int ApplyOwner(const UpperFormat& format, OwnerStore store, const LayerFs::UpperRef& ref, int to_set,
               const struct stat* attr, const struct stat& cur) {
  uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
  gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
  if (OnHostFile(format, store, ref)) {
    int r = ::fchownat(ref.fd, "", uid, gid, AT_EMPTY_PATH) == 0 ? 0 : -errno;
    if (r == 0 || store == OwnerStore::kHost || S_ISLNK(cur.st_mode)) return r;
  }
  StatOverride o{(to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : cur.st_uid,
                 (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : cur.st_gid, cur.st_mode};
  int r = format.SetOverride(ref.fd, "", o);
  if (r == -EPERM && S_ISLNK(cur.st_mode) && std::string_view(format.override_xattr()) == UpperFormat::kUserOverride) return 0;
  return r;
}

int ApplyTimes(const LayerFs::UpperRef& ref, int to_set, const struct stat* attr) {
  struct timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) tv[0].tv_nsec = UTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_ATIME)
    tv[0] = attr->st_atim;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) tv[1].tv_nsec = UTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_MTIME)
    tv[1] = attr->st_mtim;
  return ::utimensat(AT_FDCWD, ref.path().c_str(), tv, 0) == 0 ? 0 : -errno;
}

int ApplySize(const LayerFs::UpperRef& ref, off_t size, int fd) {
  if (fd >= 0) return ::ftruncate(fd, size) == 0 ? 0 : -errno;
  int tfd = ::open(ref.path().c_str(), O_WRONLY | O_CLOEXEC);
  if (tfd < 0) return -errno;
  int r = ::ftruncate(tfd, size) == 0 ? 0 : -errno;
  ::close(tfd);
  return r;
}

}  // namespace

// Full copy-up first, also for chmod/chown/utimens (no metadata-only copy-up: see
// docs/upper-format.md), then the change on the upper copy.
void LayerFs::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  std::shared_ptr<Node> node = Shared(ino);
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    ToStoredOwner(&uid, &gid);
    attr->st_uid = uid;
    attr->st_gid = gid;
  }
  int r = EnsureUpper(node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  UpperRef ref = RefOf(node.get());
  int fd = UpperFdOf(fi);
  struct stat cur;
  r = Attr(node.get(), &cur, fd);
  if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) r = ApplyOwner(format_, owner_store_, ref, to_set, attr, cur);
  if (r == 0 && (to_set & FUSE_SET_ATTR_MODE)) {
    if (owner_store_ != OwnerStore::kHost) r = Attr(node.get(), &cur, fd);
    if (r == 0) r = ApplyMode(format_, owner_store_, ref, attr->st_mode, cur);
  }
  if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) r = ApplySize(ref, attr->st_size, fd);
  if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
    r = ApplyTimes(ref, to_set, attr);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  struct stat st;
  r = Attr(node.get(), &st, fd);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  Show(&st);
  fuse_reply_attr(req, &st, Timeout(node.get()));
}

void LayerFs::ReadLink(fuse_req_t req, fuse_ino_t ino) {
  Node* node = ToNode(ino);
  if (!node->upper.load(std::memory_order_acquire)) {
    std::string target(index_.LinkTarget(node->lower));
    return (void)fuse_reply_readlink(req, target.c_str());
  }
  UpperRef ref = RefOf(node);
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(ref.fd, "", buf, PATH_MAX);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  buf[n] = '\0';
  fuse_reply_readlink(req, buf);
}

// Like overlayfs: the upper filesystem's figures (where writes go); the lowers' when read-only.
void LayerFs::StatFs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv;
  int fd = upper_fd_ >= 0 ? upper_fd_ : (layer_fds_.empty() ? -1 : layer_fds_.back());
  if (fd < 0 || ::fstatvfs(fd, &sv) != 0) return (void)fuse_reply_err(req, fd < 0 ? ENOSYS : errno);
  fuse_reply_statfs(req, &sv);
}

}  // namespace layerfs
