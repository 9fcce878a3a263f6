#include "layerstore/layer/tree_writer.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <fstream>

#include "layerstore/base/remove_tree.h"

namespace layerfs {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// "./a//b/" -> "a/b"; "/etc/x" -> "etc/x" (absolute = relative to the layer root, as Docker).
Result<std::string> NormalisePath(std::string_view raw) {
  std::string out;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view comp = raw.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return Status::Error(EINVAL, "path leaves the layer (\"..\" component)");
    if (!out.empty()) out += '/';
    out += comp;
  }
  return out;
}

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::string Join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// "a//./b/" -> {"a", "b"}; ".." is kept for the caller to interpret.
std::deque<std::string> Components(std::string_view path) {
  std::deque<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = std::min(path.find('/', i), path.size());
    std::string_view comp = path.substr(i, j - i);
    if (!comp.empty() && comp != ".") out.emplace_back(comp);
    i = j + 1;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// AUFS metadata (.wh..wh.plnk etc.) other than the opaque marker: not part of the image.
bool IsAufsMeta(const std::string& path) {
  return StartsWith(path, kMetaPrefix) || path.find(std::string("/") + std::string(kMetaPrefix)) != std::string::npos;
}

bool IgnorableXattrError(int err) {
  return err == EPERM || err == ENOTSUP || err == EACCES || err == EINVAL || err == E2BIG || err == ERANGE;
}

Result<LayerEntry> EntryFromHeader(archive_entry* e, std::string path) {
  LayerEntry out;
  out.path = std::move(path);
  out.mode = archive_entry_perm(e) & 07777;
  la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX) return Status::Error(EINVAL, "uid/gid out of range");
  out.uid = static_cast<uint32_t>(uid);
  out.gid = static_cast<uint32_t>(gid);
  out.mtime_sec = archive_entry_mtime(e);
  long nsec = archive_entry_mtime_nsec(e);
  out.mtime_nsec = nsec >= 0 && nsec < 1000000000 ? static_cast<uint32_t>(nsec) : 0;
  archive_entry_xattr_reset(e);
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
    out.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
  // pax archives may carry one xattr twice (SCHILY.xattr and LIBARCHIVE.xattr): keep one.
  std::stable_sort(out.xattrs.begin(), out.xattrs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto same_name = [](const auto& a, const auto& b) { return a.first == b.first; };
  out.xattrs.erase(std::unique(out.xattrs.begin(), out.xattrs.end(), same_name), out.xattrs.end());
  return out;
}

Status WriteAt(int fd, const char* p, size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno("write");
    p += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
  return Status::Ok();
}

// a: nullptr when the data comes later (AddWithoutData): the file is all hole.
Status CopyData(archive* a, int fd, uint64_t size) {
  const void* buf;
  size_t len;
  la_int64_t off;
  uint64_t end = 0;
  while (a != nullptr) {
    int r = archive_read_data_block(a, &buf, &len, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a);
      return Status::Error(archive_errno(a) > 0 ? archive_errno(a) : EIO, msg ? msg : "cannot read file data");
    }
    RETURN_IF_ERROR(WriteAt(fd, static_cast<const char*>(buf), len, off));
    end = std::max<uint64_t>(end, static_cast<uint64_t>(off) + len);
  }
  if (end < size && ::ftruncate(fd, static_cast<off_t>(size)) != 0) return Status::FromErrno("truncate");
  return Status::Ok();
}

void Times(const LayerEntry& e, timespec ts[2]) {
  ts[0].tv_sec = ts[1].tv_sec = e.mtime_sec;
  ts[0].tv_nsec = ts[1].tv_nsec = e.mtime_nsec;
}

// The umask, without changing it (umask(2) cannot read it alone, and other threads create files):
// /proc/self/status has it since Linux 4.7. 0777 when unknown or a default ACL rules the tree.
mode_t EffectiveUmask(int tree_fd) {
  char acl[1];
  if (::fgetxattr(tree_fd, "system.posix_acl_default", acl, 0) >= 0) return 0777;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("Umask:")) continue;
    std::string_view digits = std::string_view(line).substr(6);
    while (!digits.empty() && (digits.front() == '\t' || digits.front() == ' ')) digits.remove_prefix(1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 8);
    return ec == std::errc() ? static_cast<mode_t>(value & 0777) : 0777;
  }
  return 0777;
}

// The group a new file gets: a set-group-ID directory's, else the process's.
gid_t NewFileGroup(int dir_fd) {
  struct stat st;
  return ::fstat(dir_fd, &st) == 0 && (st.st_mode & S_ISGID) ? st.st_gid : getegid();
}

}  // namespace

TreeWriter::TreeWriter(int tree_fd, LayerIndex* index)
    : tree_fd_(tree_fd), index_(index), root_(geteuid() == 0), euid_(geteuid()), egid_(NewFileGroup(tree_fd)), umask_(EffectiveUmask(tree_fd)) {}

// No set-id or sticky bit (a write would clear those without root) and nothing the umask takes.
bool TreeWriter::CreatedExactly(mode_t mode) const { return (mode & 07000) == 0 && (mode & umask_) == 0; }

Status TreeWriter::Add(archive* a, archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  std::string shown = raw ? raw : "";
  auto path = NormalisePath(shown);
  Status st = path.ok() ? AddEntry(a, e, *path) : path.status();
  return st.WithContext("entry \"" + shown + "\"");
}

Status TreeWriter::AddEntry(archive* a, archive_entry* e, const std::string& raw_path) {
  if (IsAufsMeta(raw_path) && !raw_path.ends_with(kOpaqueMarker)) return Status::Ok();
  auto [raw_dir, name] = SplitPath(raw_path);
  ASSIGN_OR_RETURN(std::string dir, ResolveDir(raw_dir));
  std::string path = Join(dir, name);
  ASSIGN_OR_RETURN(LayerEntry entry, EntryFromHeader(e, path));
  if (name == kOpaqueMarker) return MarkOpaque(dir, entry);
  if (StartsWith(name, kWhiteoutPrefix)) return AddWhiteout(dir, name.substr(kWhiteoutPrefix.size()), std::move(entry));
  if (const char* target = archive_entry_hardlink(e)) {
    ASSIGN_OR_RETURN(int dir_fd, DirFd(dir));
    return AddHardlink(dir_fd, name, entry, target);
  }
  mode_t type = archive_entry_filetype(e);
  if (path.empty()) {
    if (type != AE_IFDIR) return Status::Error(EINVAL, "the layer root must be a directory");
    entry.type = EntryType::kDirectory;
    Record(std::move(entry));
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(int dir_fd, DirFd(dir));
  if (type == AE_IFREG) entry.size = static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
  if (type == AE_IFLNK) {
    entry.link_target = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
    entry.mode = 0777;  // a Linux symlink has no mode of its own, whatever the tar header says
  }
  switch (type) {
    case AE_IFDIR: entry.type = EntryType::kDirectory; return AddDirectory(dir_fd, name, std::move(entry));
    case AE_IFREG: entry.type = EntryType::kRegular; return AddRegular(a, dir_fd, name, std::move(entry));
    case AE_IFLNK: entry.type = EntryType::kSymlink; return AddSymlink(dir_fd, name, std::move(entry));
    case AE_IFIFO: entry.type = EntryType::kFifo; break;
    case AE_IFCHR: entry.type = EntryType::kCharDevice; break;
    case AE_IFBLK: entry.type = EntryType::kBlockDevice; break;
    case AE_IFSOCK: entry.type = EntryType::kSocket; break;
    default: return Status::Error(EINVAL, "unsupported entry type");
  }
  entry.rdev = archive_entry_rdev(e);
  return AddSpecial(dir_fd, name, std::move(entry));
}

Status TreeWriter::AddDirectory(int dir_fd, const std::string& name, LayerEntry entry) {
  // Owner-writable until Finish() applies the real mode: children still have to be created.
  if (::mkdirat(dir_fd, name.c_str(), 0700) != 0) {
    if (errno != EEXIST) return Status::FromErrno("mkdir");
    RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/true));
    if (::mkdirat(dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir");
  }
  Record(std::move(entry));
  return Status::Ok();
}

Status TreeWriter::AddRegular(archive* a, int dir_fd, const std::string& name, LayerEntry entry) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  // A new file's descriptor is writable whatever its mode: the final mode can be the create's.
  const bool exact = CreatedExactly(entry.mode);
  const mode_t create_mode = exact ? entry.mode : 0600;
  UniqueFd fd(::openat(dir_fd, name.c_str(), kFlags, create_mode));
  if (!fd.valid() && errno == EEXIST) {
    RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/false));
    fd.Reset(::openat(dir_fd, name.c_str(), kFlags, create_mode));
  }
  if (!fd.valid()) return Status::FromErrno("create");
  RETURN_IF_ERROR(CopyData(a, fd.get(), entry.size));
  RETURN_IF_ERROR(ApplyMetadata(fd.get(), entry, exact));
  if (::close(fd.Release()) != 0) return Status::FromErrno("close");
  Record(std::move(entry));
  return Status::Ok();
}

Status TreeWriter::AddSymlink(int dir_fd, const std::string& name, LayerEntry entry) {
  entry.size = entry.link_target.size();
  if (::symlinkat(entry.link_target.c_str(), dir_fd, name.c_str()) != 0) {
    if (errno != EEXIST) return Status::FromErrno("symlink");
    RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/false));
    if (::symlinkat(entry.link_target.c_str(), dir_fd, name.c_str()) != 0) return Status::FromErrno("symlink");
  }
  RETURN_IF_ERROR(ApplyMetadataAt(dir_fd, name, entry));
  Record(std::move(entry));
  return Status::Ok();
}

// FIFOs always; devices only as root (a container runtime without CAP_MKNOD gets EPERM: the
// index still has them); sockets never (a socket file is meaningless without its server).
Status TreeWriter::AddSpecial(int dir_fd, const std::string& name, LayerEntry entry) {
  mode_t kind = 0;
  if (entry.type == EntryType::kFifo) kind = S_IFIFO;
  if (root_ && entry.type == EntryType::kCharDevice) kind = S_IFCHR;
  if (root_ && entry.type == EntryType::kBlockDevice) kind = S_IFBLK;
  RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/false));
  bool created = false;
  if (kind != 0) {
    if (::mknodat(dir_fd, name.c_str(), kind | 0600, static_cast<dev_t>(entry.rdev)) == 0) created = true;
    else if (errno != EPERM)
      return Status::FromErrno("mknod");
  }
  if (created) RETURN_IF_ERROR(ApplyMetadataAt(dir_fd, name, entry));
  Record(std::move(entry));
  return Status::Ok();
}

Status TreeWriter::AddHardlink(int dir_fd, const std::string& name, const LayerEntry& entry, const char* target) {
  auto tpath = NormalisePath(target);
  if (!tpath.ok()) return tpath.status().WithContext(std::string("hard link target \"") + target + "\"");
  auto [traw_dir, tname] = SplitPath(*tpath);
  ASSIGN_OR_RETURN(std::string tdir, ResolveDir(traw_dir));
  auto it = by_path_.find(Join(tdir, tname));
  if (it == by_path_.end())
    return Status::Error(EINVAL, "hard link to \"" + *tpath + "\", which the layer does not contain before it");
  LayerEntry& t = entries_[it->second];
  if (t.type == EntryType::kDirectory || t.type == EntryType::kWhiteout)
    return Status::Error(EINVAL, "hard link to \"" + *tpath + "\", which is not a file");
  if (t.path == entry.path) return Status::Ok();
  if (t.hardlink_group == 0) t.hardlink_group = next_group_++;
  LayerEntry link = t;
  link.path = entry.path;
  ASSIGN_OR_RETURN(UniqueFd tfd, OpenDirBeneath(tdir, /*create=*/false));
  RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/false));
  if (::linkat(tfd.get(), tname.c_str(), dir_fd, name.c_str(), 0) != 0) {
    bool untreed = errno == ENOENT && (link.type == EntryType::kSocket || link.type == EntryType::kCharDevice ||
                                       link.type == EntryType::kBlockDevice);
    if (!untreed) return Status::FromErrno("hard link to \"" + *tpath + "\"");
  }
  Record(std::move(link));
  return Status::Ok();
}

Status TreeWriter::AddWhiteout(const std::string& dir, const std::string& name, LayerEntry entry) {
  if (name.empty() || name == "." || name == "..") return Status::Error(EINVAL, "malformed whiteout");
  ASSIGN_OR_RETURN(int dir_fd, DirFd(dir));
  RETURN_IF_ERROR(MakeRoom(dir_fd, name, /*keep_dir=*/false));
  entry.path = Join(dir, name);
  entry.type = EntryType::kWhiteout;
  entry.xattrs.clear();
  Record(std::move(entry));
  return Status::Ok();
}

Status TreeWriter::MarkOpaque(const std::string& dir, const LayerEntry& marker) {
  if (!dir.empty()) RETURN_IF_ERROR(DirFd(dir).status());
  auto it = by_path_.find(dir);
  if (it != by_path_.end()) {
    entries_[it->second].opaque = true;
    return Status::Ok();
  }
  LayerEntry d;
  d.path = dir;
  d.type = EntryType::kDirectory;
  d.mode = 0755;
  d.mtime_sec = marker.mtime_sec;
  d.mtime_nsec = marker.mtime_nsec;
  d.opaque = true;
  Record(std::move(d));
  return Status::Ok();
}

// The same walk as the kernel's RESOLVE_IN_ROOT, over the entries this layer wrote.
Result<std::string> TreeWriter::ResolveDir(const std::string& dir) const {
  constexpr int kMaxLinks = 40;  // the kernel's MAXSYMLINKS
  std::deque<std::string> todo = Components(dir);
  std::string out;
  int links = 0;
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp == "..") {
      out = SplitPath(out).first;  // stops at the layer root
      continue;
    }
    std::string next = Join(out, comp);
    auto it = by_path_.find(next);
    if (it == by_path_.end() || entries_[it->second].type != EntryType::kSymlink) {
      out = std::move(next);
      continue;
    }
    if (++links > kMaxLinks) return Status::Error(ELOOP, "too many levels of symlinks below \"" + dir + "\"");
    const std::string& target = entries_[it->second].link_target;
    std::deque<std::string> parts = Components(target);
    todo.insert(todo.begin(), parts.begin(), parts.end());
    if (target.starts_with('/')) out.clear();
  }
  return out;
}

Result<int> TreeWriter::DirFd(const std::string& dir) {
  if (dir.empty()) return tree_fd_;
  if (cached_fd_.valid() && cached_dir_ == dir) return cached_fd_.get();
  ASSIGN_OR_RETURN(cached_fd_, OpenDirBeneath(dir, /*create=*/true));
  cached_dir_ = dir;
  return cached_fd_.get();
}

Result<UniqueFd> TreeWriter::OpenDirBeneath(const std::string& dir, bool create) const {
  if (dir.empty()) return UniqueFd(::fcntl(tree_fd_, F_DUPFD_CLOEXEC, 0));
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = ::syscall(SYS_openat2, tree_fd_, dir.c_str(), &how, sizeof how);
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  // Slow path (missing parents to create, or no openat2): one component at a time, never
  // following a symlink.
  UniqueFd cur(::fcntl(tree_fd_, F_DUPFD_CLOEXEC, 0));
  size_t i = 0;
  while (i < dir.size()) {
    size_t j = std::min(dir.find('/', i), dir.size());
    std::string comp = dir.substr(i, j - i);
    std::string sofar = dir.substr(0, j);
    i = j + 1;
    constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd next(::openat(cur.get(), comp.c_str(), kFlags));
    if (!next.valid() && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno("mkdir \"" + sofar + "\"");
      next.Reset(::openat(cur.get(), comp.c_str(), kFlags));
    }
    if (!next.valid()) {
      struct stat st;
      if ((errno == ELOOP || errno == ENOTDIR) && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        return Status::Error(ELOOP, "\"" + sofar + "\" is a symlink: refusing to write through it");
      if (errno == ENOTDIR || errno == ELOOP) return Status::Error(ENOTDIR, "\"" + sofar + "\" is not a directory");
      return Status::FromErrno("open \"" + sofar + "\"");
    }
    cur = std::move(next);
  }
  return cur;
}

Status TreeWriter::MakeRoom(int dir_fd, const std::string& name, bool keep_dir) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("stat");
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0) return Status::FromErrno("replace");
    return Status::Ok();
  }
  if (keep_dir) return Status::Ok();
  cached_dir_.clear();  // the cached directory may be inside the one we delete (fd may be dir_fd)
  UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return Status::FromErrno("replace");
  RETURN_IF_ERROR(RemoveTreeContents(sub.get(), name));
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) return Status::FromErrno("replace");
  return Status::Ok();
}

Status TreeWriter::ApplyMetadata(int fd, const LayerEntry& e, bool mode_set) const {
  if (root_ && !OwnedAlready(e) && ::fchown(fd, e.uid, e.gid) != 0 && errno != EPERM && errno != EINVAL)
    return Status::FromErrno("chown");
  if (!mode_set && ::fchmod(fd, e.mode) != 0) return Status::FromErrno("chmod");
  for (const auto& [name, value] : e.xattrs)
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0 && !IgnorableXattrError(errno))
      return Status::FromErrno("set xattr " + name);
  timespec ts[2];
  Times(e, ts);
  if (::futimens(fd, ts) != 0) return Status::FromErrno("set mtime");
  return Status::Ok();
}

// For entries that cannot be opened (symlinks, FIFOs, devices): by name, never following.
Status TreeWriter::ApplyMetadataAt(int dir_fd, const std::string& name, const LayerEntry& e) const {
  const char* n = name.c_str();
  if (root_ && !OwnedAlready(e) && ::fchownat(dir_fd, n, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM &&
      errno != EINVAL)
    return Status::FromErrno("chown");
  if (e.type != EntryType::kSymlink && ::fchmodat(dir_fd, n, e.mode, 0) != 0) return Status::FromErrno("chmod");
  std::string proc = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
  for (const auto& [xname, value] : e.xattrs)
    if (::lsetxattr(proc.c_str(), xname.c_str(), value.data(), value.size(), 0) != 0 && !IgnorableXattrError(errno))
      return Status::FromErrno("set xattr " + xname);
  timespec ts[2];
  Times(e, ts);
  if (::utimensat(dir_fd, n, ts, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno("set mtime");
  return Status::Ok();
}

void TreeWriter::Record(LayerEntry entry) {
  auto it = by_path_.find(entry.path);
  if (it == by_path_.end()) {
    by_path_.emplace(entry.path, entries_.size());
    entries_.push_back(std::move(entry));
    dead_.push_back(false);
    return;
  }
  LayerEntry& old = entries_[it->second];
  bool was_dir = old.type == EntryType::kDirectory;
  if (was_dir && entry.type == EntryType::kDirectory) entry.opaque |= old.opaque;
  std::string path = entry.path;
  old = std::move(entry);
  if (was_dir && old.type != EntryType::kDirectory) DropBelow(path);
}

void TreeWriter::DropBelow(const std::string& dir) {
  std::string prefix = dir + "/";
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (dead_[i] || !StartsWith(entries_[i].path, prefix)) continue;
    dead_[i] = true;
    by_path_.erase(entries_[i].path);
  }
}

Status TreeWriter::Finish() {
  std::vector<size_t> dirs;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (!dead_[i] && entries_[i].type == EntryType::kDirectory) dirs.push_back(i);
  // Deepest first: a parent's final mode (say 0555) must not stop us from fixing its children.
  std::sort(dirs.begin(), dirs.end(), [&](size_t a, size_t b) { return entries_[a].path > entries_[b].path; });
  cached_fd_.Reset();
  for (size_t i : dirs) {
    const LayerEntry& d = entries_[i];
    auto fd = OpenDirBeneath(d.path, /*create=*/false);
    Status st = fd.ok() ? ApplyMetadata(fd->get(), d) : fd.status();
    if (!st.ok()) return st.WithContext("directory \"" + d.path + "\"");
  }
  std::vector<LayerEntry>& out = index_->entries();
  out.clear();
  out.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i)
    if (!dead_[i]) out.push_back(std::move(entries_[i]));
  index_->Sort();
  return Status::Ok();
}

}  // namespace layerfs
