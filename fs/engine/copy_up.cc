// Copy-up: the first change to a lower entry makes it an upper entry. Parents first; the copy
// is built in work/ (data, owner, mode, xattrs, times, origin) and renamed into place, so the
// upper never holds a half-copied file under its real name, even after a crash. The node's
// mutex makes it happen exactly once however many threads race.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reflink when the filesystem shares extents (btrfs, xfs): a copy-up of any size is instant.
// Else copy_file_range (in-kernel, server-side on NFS), else plain read/write (cross-fs on old
// kernels).
int CopyData(int from, int to, uint64_t size) {
  if (::ioctl(to, FICLONE, from) == 0) return 0;
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::copy_file_range(from, nullptr, to, nullptr, size - done, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return -errno;
      ssize_t s = ::sendfile(to, from, nullptr, size - done);
      if (s <= 0) return s == 0 ? 0 : -errno;
      done += s;
      continue;
    }
    done += n;
  }
  return 0;
}

}  // namespace

void RestoreTimes(int dirfd, const struct stat& before) {
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ::futimens(dirfd, times);
}

std::string LayerFs::NewWorkName() {
  return "#" + std::to_string(::getpid()) + "-" + std::to_string(work_counter_.fetch_add(1));
}

int OpenatNoAtime(int dirfd, const char* path, int flags) {
  int fd = ::openat(dirfd, path, flags);
  if (fd < 0 && errno == EPERM && (flags & O_NOATIME)) fd = ::openat(dirfd, path, flags & ~O_NOATIME);
  return fd;
}

// O_NOATIME: a lower file's atime is the image's (the index), whatever reads it; the layer
// files on the host, shared by every container, need not be written for it either.
int LayerFs::OpenLower(uint32_t idx, int flags) const {
  const MergedNode& n = index_.node(idx);
  std::string path = index_.Path(idx);
  int fd = OpenatNoAtime(layer_fds_[n.layer], path.empty() ? "." : path.c_str(),
                         (flags & ~(O_CREAT | O_TRUNC | O_APPEND | O_ACCMODE)) | O_RDONLY | O_NOFOLLOW | O_NOATIME |
                             O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

bool LayerFs::FromLazyLayer(uint32_t idx) const {
  return idx != kNoLower && options_.lazy && options_.lazy->IsLazy(index_.node(idx).layer);
}

// A lazy layer's error (registry gone, chunk refused) reaches the reader as EIO, never as
// bytes: the tree still holds a hole there.
int LayerFs::EnsureLower(uint32_t idx, uint64_t offset, uint64_t length) const {
  if (!FromLazyLayer(idx) || length == 0) return 0;
  return options_.lazy->Ensure(index_.node(idx).layer, index_.Path(idx), offset, length) == 0 ? 0 : -EIO;
}

class CopyUp {
 public:
  CopyUp(LayerFs* fs, Node* node, int parent_fd, const std::string& name)
      : fs_(fs), idx_(node->lower), n_(fs->index_.node(node->lower)), parent_fd_(parent_fd), name_(name) {}

  int Run() {
    tmp_ = fs_->NewWorkName();
    int r = MakeEntry();
    if (r == 0) r = SetMetadata();
    if (r == 0) r = Install();
    if (r != 0) Discard();
    return r;
  }

 private:
  // Copy-up is not a change the user made: the parent keeps its times (as in overlayfs).
  int Install() {
    struct stat parent;
    bool keep = ::fstat(parent_fd_, &parent) == 0;
    if (::renameat(fs_->work_fd_, tmp_.c_str(), parent_fd_, name_.c_str()) != 0) return -errno;
    if (keep) RestoreTimes(parent_fd_, parent);
    return 0;
  }

  int MakeEntry() {
    int wfd = fs_->work_fd_;
    switch (n_.mode & S_IFMT) {
      case S_IFDIR:
        return ::mkdirat(wfd, tmp_.c_str(), 0700) == 0 ? 0 : -errno;
      case S_IFLNK: {
        std::string target(fs_->index_.LinkTarget(idx_));
        return ::symlinkat(target.c_str(), wfd, tmp_.c_str()) == 0 ? 0 : -errno;
      }
      case S_IFREG:
        return CopyFile();
      default:  // fifo, socket, device (devices need root; rootless keeps the type in override)
        if (::mknodat(wfd, tmp_.c_str(), n_.mode, n_.rdev) == 0) return 0;
        if (fs_->privileged() || errno != EPERM) return -errno;
        return ::mknodat(wfd, tmp_.c_str(), S_IFREG | 0600, 0) == 0 ? 0 : -errno;
    }
  }

  int CopyFile() {
    if (int r = fs_->EnsureLower(idx_, 0, n_.size); r != 0) return r;
    int src = fs_->OpenLower(idx_, O_RDONLY);
    if (src < 0) return src;
    Fd in(src);
    Fd out(::openat(fs_->work_fd_, tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (out.get() < 0) return -errno;
    int r = CopyData(in.get(), out.get(), n_.size);
    // As overlayfs does (unless volatile): the data is on disk before the name appears.
    if (r == 0 && fs_->options_.sync_upper && ::fsync(out.get()) != 0) r = -errno;
    return r;
  }

  // Owner before mode (chown clears setuid). The copy gets the lower's owner where this mount
  // keeps owners on files (OwnerStore; root of a user namespace: if it maps the ids). Otherwise
  // the host file stays owned by us and accessible to us (u+rw, dirs u+rwx, so we can still
  // work inside), and the recorded owner and true mode go to the override xattr whenever the
  // host cannot show them (always with force_mask). A symlink keeps what chown could do.
  int SetMetadata() {
    int wfd = fs_->work_fd_;
    bool link = S_ISLNK(n_.mode);
    std::string path = UpperFormat::FdPath(wfd, tmp_);
    uint32_t host_mode = n_.mode & 07777;
    OwnerStore store = fs_->owner_store();
    bool owned = store != OwnerStore::kXattr && ::fchownat(wfd, tmp_.c_str(), n_.uid, n_.gid, AT_SYMLINK_NOFOLLOW) == 0;
    if (store == OwnerStore::kHost && !owned) return -errno;
    struct stat made;
    if (::fstatat(wfd, tmp_.c_str(), &made, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
    bool same_type = (made.st_mode & S_IFMT) == (n_.mode & S_IFMT);  // a device may stand as a file
    if (!link && !(owned && same_type)) {
      host_mode |= S_ISDIR(n_.mode) ? 0700 : 0600;
      bool plain = S_ISREG(n_.mode) || S_ISDIR(n_.mode);
      if (n_.uid != made.st_uid || n_.gid != made.st_gid || !plain || host_mode != (n_.mode & 07777) ||
          fs_->options_.xattr_permissions != 0) {
        int r = fs_->format_.SetOverride(wfd, tmp_, {n_.uid, n_.gid, n_.mode});
        if (r != 0 && !RefusedOnSpecialFile(r, made)) return r;
      }
    }
    if (!link && ::fchmodat(wfd, tmp_.c_str(), host_mode, 0) != 0) return -errno;
    for (const auto& [k, v] : fs_->index_.Xattrs(idx_)) {
      std::string key(k);
      if (::lsetxattr(path.c_str(), key.c_str(), v.data(), v.size(), 0) != 0 && errno != ENOTSUP && errno != EPERM)
        return -errno;
    }
    if (!link || fs_->privileged()) {
      int r = fs_->format_.SetOrigin(wfd, tmp_, idx_);
      if (r != 0 && !link && !RefusedOnSpecialFile(r, made)) return r;
    }
    struct timespec times[2] = {{n_.mtime_sec, static_cast<long>(n_.mtime_nsec)},
                                {n_.mtime_sec, static_cast<long>(n_.mtime_nsec)}};
    if (::utimensat(wfd, tmp_.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
    return 0;
  }

  void Discard() {
    if (::unlinkat(fs_->work_fd_, tmp_.c_str(), 0) != 0) ::unlinkat(fs_->work_fd_, tmp_.c_str(), AT_REMOVEDIR);
  }

  // The kernel allows user.* xattrs only on regular files and directories: a fifo or socket
  // copied up without root keeps no origin (its st_ino may change at the next mount) and no
  // override (it shows the owner chown could give it), as fuse-overlayfs ignores that EPERM;
  // failing would make the copy-up, and every rename of a directory holding one, fail.
  bool RefusedOnSpecialFile(int r, const struct stat& made) const {
    return r == -EPERM && !fs_->privileged() && !S_ISREG(made.st_mode) && !S_ISDIR(made.st_mode);
  }

  LayerFs* fs_;
  uint32_t idx_;
  const MergedNode& n_;
  int parent_fd_;
  std::string name_;
  std::string tmp_;
};

namespace {

// Set while a group's copy-up links its members in: the directories copied up for them are
// only link holders (overlayfs would not copy them up yet), and marked so.
thread_local bool linking_members = false;

// Something other than a group's copy-up changes directory `node` (its entries, attributes or
// a child's copy-up): overlayfs would copy it up with its parents now, so it and links-only
// directories above it become plain merged ones (nlink 1) from here on. Changes through a
// linked-in member itself do not count: all links of the inode share one node, which cannot
// tell which name the change came through (docs/upper-format.md, deviations).
void EndLinksOnly(const UpperFormat& format, fuse_session* se, Node* node) {
  if (linking_members || !node->is_dir) return;
  for (std::shared_ptr<Node> dir = node->shared_from_this(); dir; dir = dir->Location().first) {
    int fd = dir->dir_fd.load(std::memory_order_acquire);
    if (fd < 0 || !format.IsLinksOnly(fd)) return;  // its parents are not links-only either
    format.ClearLinksOnly(fd);
    if (se != nullptr && dir->nlookup.load() > 0)
      fuse_lowlevel_notify_inval_inode(se, reinterpret_cast<fuse_ino_t>(dir.get()), -1, 0);
  }
}

}  // namespace

int LayerFs::EnsureUpper(const std::shared_ptr<Node>& node) {
  if (node->upper.load(std::memory_order_acquire)) {
    EndLinksOnly(format_, session_, node.get());
    return 0;
  }
  if (upper_fd_ < 0) return -EROFS;
  bool grouped = !node->is_dir && index_.node(node->lower).nlink > 1;
  std::unique_lock<std::mutex> group_lock;
  if (grouped) group_lock = std::unique_lock(group_locks_[index_.node(node->lower).ino_node % kGroupLocks]);
  std::lock_guard lock(node->mu);
  if (node->upper.load(std::memory_order_acquire)) return 0;
  std::shared_ptr<Node> parent = node->parent;
  if (int r = EnsureUpper(parent); r != 0) return r;
  int parent_fd = parent->dir_fd.load(std::memory_order_acquire);
  if (int r = CopyUp(this, node.get(), parent_fd, node->name).Run(); r != 0) return r;
  if (node->is_dir) {
    int fd = ::openat(parent_fd, node->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    // Not in `layerfs overlay`: its upper must show the same once it is a lower layer (merged).
    if (linking_members && !options_.rename_copies_subtree) format_.SetLinksOnly(fd);  // crash before: merged
    node->dir_fd.store(fd, std::memory_order_release);
    node->upper.store(true, std::memory_order_release);
  } else if (int r = AttachUpperFile(node.get(), parent_fd, node->name); r != 0) {
    return r;
  }
  // The kernel may have cached what changed: ctime and blocks, a merged directory's nlink
  // (1 from now on), the parent's ctime (see the table in node_resolve.cc).
  Invalidate(node.get(), true);
  Invalidate(parent.get(), false);
  if (grouped) LinkGroupMembers(node->lower, parent_fd, node->name);
  return 0;
}

// Hard links of a lower file stay one file after copy-up (as overlayfs with index=on): every
// other visible member of the group becomes a link to the new upper copy, so all keep one
// st_ino, one nlink and see each other's writes. Members deleted or replaced are skipped.
// Directories copied up only to hold a member are marked links-only (shown as lower).
void LayerFs::LinkGroupMembers(uint32_t copied, int copy_dirfd, const std::string& copy_name) {
  linking_members = true;
  for (uint32_t m : GroupOf(index_.node(copied).ino_node)) {
    if (m == copied) continue;
    std::shared_ptr<Node> dir = ResolveLowerDir(index_.node(m).parent);
    if (!dir) continue;
    std::string name(index_.name(m));
    std::shared_ptr<Node> member;
    if (LookupChild(dir, name, &member) != 0) continue;
    struct stat before;
    if (member->key == InodeTable::LowerKey(m) && !member->upper.load() && EnsureUpper(dir) == 0 &&
        ::fstat(dir->dir_fd.load(), &before) == 0 &&
        ::linkat(copy_dirfd, copy_name.c_str(), dir->dir_fd.load(), name.c_str(), 0) == 0) {
      RestoreTimes(dir->dir_fd.load(), before);
      AttachUpperFile(member.get(), dir->dir_fd.load(), name);
      Invalidate(member.get(), false);
      Invalidate(dir.get(), false);
    }
    table_.Forget(member.get(), 1);
  }
  linking_members = false;
}

int LayerFs::AttachUpperFile(Node* node, int dirfd, const std::string& name) {
  int fd = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  int old = node->file_fd.exchange(fd, std::memory_order_acq_rel);
  if (old >= 0) ::close(old);  // never: a node attaches once, under its lock
  node->upper.store(true, std::memory_order_release);
  return 0;
}

const std::vector<uint32_t>& LayerFs::GroupOf(uint32_t ino_node) {
  std::call_once(groups_once_, [this] {
    for (uint32_t i = 0; i < index_.size(); ++i)
      if (!index_.is_dir(i) && index_.node(i).nlink > 1) groups_[index_.node(i).ino_node].push_back(i);
  });
  static const std::vector<uint32_t> kEmpty;
  auto it = groups_.find(ino_node);
  return it == groups_.end() ? kEmpty : it->second;
}

namespace {

// Renamed lower directories: merged-index node of each redirect's lower dir -> the merged path
// ("a/b") of the upper dir that holds it now. Walks the upper's directories (upper names are
// merged names), so it is only used when a lower directory is not at its own path any more.
// source: the lower directory dirfd merges (kNoLower: none). Kernel overlayfs writes a
// redirect relative to the parent's lower directory when the rename stayed in one directory.
void FindRedirects(const MergedIndex& index, const UpperFormat& format, int dirfd, const std::string& rel,
                   uint32_t source, std::unordered_map<uint32_t, std::string>* out) {
  int own = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // a dup would share the offset
  DIR* d = own >= 0 ? ::fdopendir(own) : nullptr;
  if (d == nullptr) {
    if (own >= 0) ::close(own);
    return;
  }
  std::vector<std::string> subdirs;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    struct stat st;
    if (name == "." || name == ".." || UpperFormat::IsWhiteoutFileName(name)) continue;
    if (e->d_type == DT_DIR || (e->d_type == DT_UNKNOWN && ::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                S_ISDIR(st.st_mode)))
      subdirs.push_back(std::move(name));
  }
  ::closedir(d);
  for (const auto& name : subdirs) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    std::string path = rel.empty() ? name : rel + "/" + name;
    auto in_source = [&](std::string_view child) {
      return source == kNoLower ? std::nullopt : index.Lookup(source, child);
    };
    std::optional<uint32_t> lower;
    auto redirect = format.Redirect(fd);
    if (redirect) lower = redirect->starts_with('/') ? index.LookupPath(*redirect) : in_source(*redirect);
    else if (!format.IsOpaque(fd))
      lower = in_source(name);
    if (lower && !index.is_dir(*lower)) lower.reset();
    if (redirect && lower) out->emplace(*lower, path);
    FindRedirects(index, format, fd, path, lower.value_or(kNoLower), out);
    ::close(fd);
  }
}

}  // namespace

// The merged-view directory whose lower source is the lower directory idx (null if it is gone
// or no longer merges it). Tried at its own lower path first; a directory renamed on the way
// (its upper copy carries a redirect) is found where it lives now, so hard-link members inside
// renamed directories are still reached.
std::shared_ptr<Node> LayerFs::ResolveLowerDir(uint32_t idx) {
  std::vector<uint32_t> chain;  // idx and its lower ancestors, root excluded, deepest first
  for (uint32_t cur = idx; cur != MergedIndex::kRoot; cur = index_.node(cur).parent) chain.push_back(cur);
  auto step = [this](const std::shared_ptr<Node>& dir, const std::string& name) -> std::shared_ptr<Node> {
    std::shared_ptr<Node> next;
    if (LookupChild(dir, name, &next) != 0) return nullptr;
    table_.Forget(next.get(), 1);
    return next->is_dir ? next : nullptr;
  };
  // Walks from `dir` down chain[from-1..0]; each step must merge the expected lower dir.
  auto descend = [&](std::shared_ptr<Node> dir, size_t from) {
    for (size_t i = from; dir && i-- > 0;) {
      dir = step(dir, std::string(index_.name(chain[i])));
      if (dir && dir->lower != chain[i]) dir = nullptr;
    }
    return dir;
  };
  if (root_->lower != MergedIndex::kRoot) return nullptr;  // opaque root: no lower dir shows
  if (auto dir = descend(root_, chain.size())) return dir;
  if (upper_fd_ < 0) return nullptr;
  std::unordered_map<uint32_t, std::string> redirects;
  FindRedirects(index_, format_, upper_fd_, "", root_->lower, &redirects);
  for (size_t k = 0; k < chain.size(); ++k) {  // the deepest renamed ancestor decides
    auto it = redirects.find(chain[k]);
    if (it == redirects.end()) continue;
    std::shared_ptr<Node> dir = root_;
    for (size_t start = 0; dir && start <= it->second.size();) {
      size_t end = std::min(it->second.find('/', start), it->second.size());
      dir = step(dir, it->second.substr(start, end - start));
      start = end + 1;
    }
    if (!dir || dir->lower != chain[k]) return nullptr;
    return descend(dir, k);
  }
  return nullptr;
}

}  // namespace layerfs
