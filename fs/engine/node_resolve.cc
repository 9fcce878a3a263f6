// How a name in a merged directory becomes a Node, and a Node its attributes.
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/engine/host_admin.h"
#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

const char* OverrideXattrFor(int xattr_permissions) {
  switch (xattr_permissions) {
    case 1: return UpperFormat::kPrivilegedOverride;
    case 2: return UpperFormat::kUserOverride;
    default: return UpperFormat::kContainersOverride;
  }
}

// euid 0 without host admin: root of a user namespace, which may chown to every id it maps
// and bypasses permission checks on files owned by them (CAP_CHOWN, CAP_DAC_OVERRIDE there).
OwnerStore OwnerStoreFor(bool host_admin, int xattr_permissions) {
  if (xattr_permissions != 0) return OwnerStore::kXattr;
  if (host_admin) return OwnerStore::kHost;
  return ::geteuid() == 0 ? OwnerStore::kHostOrXattr : OwnerStore::kXattr;
}

}  // namespace

Result<std::unique_ptr<LayerFs>> LayerFs::Create(MergedIndex index, const LayerFsOptions& options) {
  bool host_admin = HasHostAdmin();
  std::unique_ptr<LayerFs> fs(new LayerFs(std::move(index), options,
                                          UpperFormat(host_admin, OverrideXattrFor(options.xattr_permissions))));
  fs->owner_store_ = OwnerStoreFor(host_admin, options.xattr_permissions);
  for (const auto& dir : options.layer_dirs) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("layer tree " + dir);
    fs->layer_fds_.push_back(fd);
  }
  if (fs->layer_fds_.size() != fs->index_.layer_count())
    return Status::Error(EINVAL, "merged index has " + std::to_string(fs->index_.layer_count()) +
                                     " layers, mount has " + std::to_string(fs->layer_fds_.size()));
  auto root = std::make_shared<Node>();
  root->is_dir = true;
  root->lower = MergedIndex::kRoot;
  if (!options.upper_dir.empty()) {
    fs->upper_fd_ = ::open(options.upper_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->upper_fd_ < 0) return Status::FromErrno("upper dir " + options.upper_dir);
    fs->work_fd_ = ::open(options.work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->work_fd_ < 0) return Status::FromErrno("work dir " + options.work_dir);
    fs->upper_flush_reports_ = CloseMayFail(fs->upper_fd_);
    root->dir_fd = ::dup(fs->upper_fd_);
    root->upper = true;
    if (fs->format_.IsOpaque(fs->upper_fd_)) root->lower = kNoLower;
  }
  fs->root_ = std::move(root);
  return fs;
}

LayerFs::LayerFs(MergedIndex index, const LayerFsOptions& options, UpperFormat format)
    : index_(std::move(index)), options_(options), format_(format) {}

LayerFs::~LayerFs() {
  for (int fd : layer_fds_) ::close(fd);
  if (upper_fd_ >= 0) ::close(upper_fd_);
  if (work_fd_ >= 0) ::close(work_fd_);
}

Node* LayerFs::ToNode(fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? root_.get() : reinterpret_cast<Node*>(ino);
}

std::shared_ptr<Node> LayerFs::Shared(fuse_ino_t ino) { return ToNode(ino)->shared_from_this(); }

std::optional<uint32_t> LayerFs::LowerChild(Node* dir, const std::string& name) const {
  if (dir->lower == kNoLower) return std::nullopt;
  return index_.Lookup(dir->lower, name);
}

// Upper first (a whiteout hides the lower entry), then the lower source of the directory.
// A directory without an upper copy costs no syscall at all.
int LayerFs::LookupChild(const std::shared_ptr<Node>& dir, const std::string& name, std::shared_ptr<Node>* out) {
  if (!dir->is_dir) return -ENOTDIR;
  int dfd = dir->dir_fd.load(std::memory_order_acquire);
  if (dfd >= 0) {
    if (UpperFormat::IsWhiteoutFileName(name)) return -ENOENT;
    struct stat st;
    bool whiteout = false;
    int r = format_.StatChild(dfd, name, &st, &whiteout);
    if (r == 0 && whiteout) return -ENOENT;
    if (r == 0) {
      *out = NodeForUpper(dir, name, st);
      return *out ? 0 : -EIO;
    }
    if (r != -ENOENT) return r;
  }
  auto idx = LowerChild(dir.get(), name);
  if (!idx) return -ENOENT;
  if (dfd >= 0 && format_.HasWhiteoutFile(dfd, name)) return -ENOENT;
  *out = NodeForLower(dir, name, *idx);
  return 0;
}

std::shared_ptr<Node> LayerFs::NodeForLower(const std::shared_ptr<Node>& dir, const std::string& name, uint32_t idx) {
  auto make = [&] {
    auto n = std::make_shared<Node>();
    n->is_dir = index_.is_dir(idx);
    n->lower = idx;
    n->parent = dir;
    n->name = name;
    return n;
  };
  return table_.Acquire(InodeTable::LowerKey(idx), make, [](const Node&) { return true; });
}

// An upper entry keeps the identity of the lower entry it was copied from (origin xattr); a
// directory merges the lower directory it was renamed from (redirect) or, unless opaque, the
// lower directory of the same name.
std::shared_ptr<Node> LayerFs::NodeForUpper(const std::shared_ptr<Node>& dir, const std::string& name,
                                            const struct stat& st) {
  int dfd = dir->dir_fd.load(std::memory_order_acquire);
  bool is_dir = S_ISDIR(st.st_mode);
  std::optional<uint32_t> origin = format_.Origin(dfd, name);
  if (origin && *origin >= index_.size()) origin.reset();
  uint32_t lower = origin.value_or(kNoLower);
  int fd = -1;
  if (!is_dir) {
    fd = ::openat(dfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return nullptr;
  } else {
    fd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return nullptr;
    lower = kNoLower;
    if (auto redirect = format_.Redirect(fd)) {
      // Absolute: a path from the root; relative (kernel overlayfs, rename within one
      // directory): a name in the parent's lower directory.
      auto idx = redirect->starts_with('/') ? index_.LookupPath(*redirect) : LowerChild(dir.get(), *redirect);
      if (idx && index_.is_dir(*idx)) lower = *idx;
    } else if (!format_.IsOpaque(fd)) {
      if (auto idx = LowerChild(dir.get(), name); idx && index_.is_dir(*idx)) lower = *idx;
    }
  }
  uint64_t key = origin ? InodeTable::LowerKey(*origin)
                        : (lower != kNoLower ? InodeTable::LowerKey(lower) : InodeTable::UpperKey(st.st_ino));
  auto make = [&] {
    auto n = std::make_shared<Node>();
    n->is_dir = is_dir;
    n->lower = lower;
    n->upper = true;
    (is_dir ? n->dir_fd : n->file_fd) = fd;
    fd = -1;
    n->parent = dir;
    n->name = name;
    return n;
  };
  auto fits = [&](const Node& n) { return n.is_dir == is_dir && n.upper.load(); };
  auto node = table_.Acquire(key, make, fits);
  if (fd >= 0) ::close(fd);
  return node;
}

void LayerFs::LowerAttr(uint32_t idx, struct stat* st) const {
  const MergedNode& n = index_.node(idx);
  *st = {};
  st->st_ino = LowerIno(idx);
  st->st_mode = n.mode;
  st->st_nlink = n.nlink;
  st->st_uid = n.uid;
  st->st_gid = n.gid;
  st->st_rdev = n.rdev;
  st->st_size = static_cast<off_t>(n.size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((n.size + 511) / 512);
  st->st_mtim = {n.mtime_sec, static_cast<long>(n.mtime_nsec)};
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

// Upper attributes are the host's, with the identity a user expects: the lower st_ino after a
// copy-up (hard-link groups are copied up together, so they keep sharing it), the
// recorded owner/mode when rootless, and nlink 1 for a directory merged with lower entries
// (as overlayfs: the true count would need a walk of every layer).
int LayerFs::Attr(Node* node, struct stat* st, int fd) {
  bool links_only = node->is_dir && node->lower != kNoLower && node->upper.load(std::memory_order_acquire) &&
                    format_.IsLinksOnly(node->dir_fd.load());  // still the lower dir for overlayfs
  if (!node->upper.load(std::memory_order_acquire) || links_only) {
    LowerAttr(node->lower, st);
    return 0;
  }
  int ufd = node->is_dir ? node->dir_fd.load() : node->file_fd.load();
  if (::fstatat(fd >= 0 ? fd : ufd, "", st, AT_EMPTY_PATH) != 0) return -errno;
  if (owner_store_ != OwnerStore::kHost) {
    if (auto o = format_.Override(ufd, "")) {
      st->st_uid = o->uid;
      st->st_gid = o->gid;
      st->st_mode = (o->mode & S_IFMT) != 0 ? o->mode : (st->st_mode & S_IFMT) | (o->mode & 07777);
    }
  }
  st->st_ino = node->lower != kNoLower ? LowerIno(node->lower) : InodeTable::UpperKey(st->st_ino);
  if (!node->is_dir && node->lower != kNoLower) st->st_nlink += index_.node(node->lower).hidden_links;
  if (node->is_dir && node->lower != kNoLower) st->st_nlink = 1;
  return 0;
}

// How long the kernel may keep names (entry) and attributes (attr) without asking.
//
// Lower entries never change. The upper changes only through this daemon: like overlayfs, a
// live mount's upper must not be modified behind its back (docs/upper-format.md). So both may
// be kept long, provided every change the kernel does not learn from its own request and our
// reply is invalidated here (Invalidate, attributes only unless noted). Per operation:
//
// | operation                 | changed behind the kernel's back     | who invalidates                          |
// | ------------------------- | ------------------------------------ | ---------------------------------------- |
// | copy-up (EnsureUpper:     | node: ctime, st_blocks; a dir's nlink | EnsureUpper: node (a dir: also its       |
// |  open for write, setattr, |  becomes 1 (merged); parent: ctime    |  cached listing) and parent              |
// |  xattr, link, namespace)  |                                      |                                          |
// | hard-link group copy-up   | other members: nlink, later size,    | members: attr timeout 0 (below), as      |
// |                           |  mtime (other FUSE inodes, one file); |  their writes reach another FUSE inode;  |
// |                           |  their dirs: ctime                    |  LinkGroupMembers: their dirs            |
// | create, mkdir, mknod,     | parent: nlink, size, mtime, listing  | kernel (fuse_dir_changed); also           |
// |  symlink, link            |                                      |  NewEntryImpl: parent (a GETATTR in      |
// |                           |                                      |  flight could re-cache the old values)   |
// | unlink, rmdir             | parent as above; the node's nlink    | kernel; DeleteEntry: parent (same race)  |
// | rename, exchange          | both parents; moved node's ctime     | kernel; RenameChecked: both parents      |
// | setattr                   | nothing: the reply carries the attrs | kernel                                   |
// | write, fallocate,         | size, mtime                          | kernel (it invalidates after each)        |
// |  copy_file_range          |                                      |                                          |
// | setxattr, removexattr     | ctime; the mode, for a POSIX ACL     | SetXattr/RemoveXattr: node (the kernel   |
// |                           |                                      |  only marks ctime stale)                 |
// | lookup, getattr, readdir, | nothing                              | -                                        |
// |  read, readlink, statfs   |                                      |                                          |
//
// Names: the merged view never gains or loses a name without an operation on its directory
// (copy-up and group copy-up keep every name and its inode), so entries, negative entries
// and listings (ops_dir.cc) are kept as long as attributes.
double LayerFs::EntryTimeout(const Node* node) const {
  return node->upper.load(std::memory_order_relaxed) ? options_.upper_timeout : options_.lower_timeout;
}

double LayerFs::Timeout(const Node* node) const {
  if (!node->is_dir && node->lower != kNoLower && index_.node(node->lower).nlink > 1) return 0;
  return node->upper.load(std::memory_order_relaxed) ? options_.upper_timeout : options_.lower_timeout;
}

fuse_ino_t LayerFs::InoOf(const Node* node) const {
  return node == root_.get() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(node);
}

// Attributes only: this takes no lock the kernel may hold while it waits for our reply, so
// it is safe inside any request. A directory's listing lives in its page cache; dropping it
// locks only those pages, which no request holds either.
void LayerFs::Invalidate(const Node* node, bool listing) {
  if (session_ == nullptr || (node != root_.get() && node->nlookup.load(std::memory_order_relaxed) == 0)) return;
  fuse_lowlevel_notify_inval_inode(session_, InoOf(node), listing && node->is_dir ? 0 : -1, 0);
}

void LayerFs::ReplyEntry(fuse_req_t req, const std::shared_ptr<Node>& node) {
  fuse_entry_param e{};
  int r = Attr(node.get(), &e.attr);
  Show(&e.attr);
  if (r != 0) {
    table_.Forget(node.get(), 1);
    fuse_reply_err(req, -r);
    return;
  }
  e.ino = reinterpret_cast<fuse_ino_t>(node.get());
  e.attr_timeout = Timeout(node.get());
  e.entry_timeout = EntryTimeout(node.get());
  if (fuse_reply_entry(req, &e) != 0) table_.Forget(node.get(), 1);
}

void LayerFs::Show(struct stat* st) const {
  const OwnerPolicy& owners = options_.owners;
  if (!owners.identity()) {
    st->st_uid = owners.ShownUid(st->st_uid);
    st->st_gid = owners.ShownGid(st->st_gid);
  }
  if (options_.static_nlink && S_ISDIR(st->st_mode)) st->st_nlink = 1;
}

void LayerFs::ToStoredOwner(uid_t* uid, gid_t* gid) const {
  const OwnerPolicy& owners = options_.owners;
  if (*uid != static_cast<uid_t>(-1)) *uid = owners.uids.Stored(*uid);
  if (*gid != static_cast<gid_t>(-1)) *gid = owners.gids.Stored(*gid);
}

}  // namespace layerfs
