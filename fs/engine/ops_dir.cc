// Directory operations: opendir, readdir, readdirplus, releasedir, mkdir, rmdir.
//
// No directory needs an open handle: every READDIR lists the merged directory as it is now,
// from offsets that mean the same thing for the life of the mount, so the kernel is told
// that opendir is not implemented (zero-message opendir, FUSE_CAP_NO_OPENDIR_SUPPORT) and in
// exchange keeps each listing in its page cache (cache_readdir + keep_cache, implied) until
// the directory changes. Offsets (what telldir returns):
//   1, 2               after ".", ".."
//   2 + k + 1          after the k-th child of the directory's lower source (index order);
//                      a lower name whited out in the upper is skipped, one copied up or
//                      replaced shows with its upper type and inode
//   kUpperCookie | h   after the upper-only name whose hash is h (listed in hash order)
// So seekdir/telldir stay valid while the directory changes, as POSIX asks: an entry that
// did not change is listed exactly once by any reader (names are hashed to 62 bits, so two
// upper-only names of one directory would have to collide for a reader to lose one).
// A kernel without zero-message opendir gets an empty handle with the same caching flags.
//
// READDIRPLUS (FUSE_CAP_READDIRPLUS_AUTO, Init): each entry comes with its node and attributes,
// so a walk that stats what it lists (find, ls -l, a container's tree scan) needs no LOOKUP per
// entry: two requests per directory (the entries, then the empty end that completes the
// kernel's cached listing) instead of two plus one per entry. Each entry is a lookup reference
// the kernel forgets later, exactly as a LOOKUP's. The trade-off: a listing that does not stat
// (ls, find -name) also creates nodes for the first reply's entries (the kernel asks for plus
// again only when lookups followed: auto mode), ~360 bytes of daemon memory each.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

constexpr uint64_t kUpperCookie = uint64_t{1} << 62;

struct UpperEntry {
  uint64_t ino;  // host st_ino
  unsigned char type;
};

// One directory of the upper as the merge needs it: its real entries, the names it hides.
struct UpperDir {
  std::unordered_map<std::string, UpperEntry> entries;
  std::unordered_set<std::string> whiteouts;
};

// keep_atime: the mount is noatime or nodiratime (LayerFsOptions::nodiratime).
int ReadUpperDir(const UpperFormat& format, int dfd, bool keep_atime, UpperDir* out) {
  // own offset: readers run in parallel
  int fd = OpenatNoAtime(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | (keep_atime ? O_NOATIME : 0));
  if (fd < 0) return -errno;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return -errno;
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (UpperFormat::IsWhiteoutFileName(name)) {
      if (name != ".wh..wh..opq") out->whiteouts.insert(name.substr(4));
      continue;
    }
    unsigned char type = e->d_type;
    if (type == DT_CHR || type == DT_UNKNOWN) {
      struct stat st;
      bool whiteout = false;
      if (format.StatChild(dfd, name, &st, &whiteout) != 0) continue;  // gone meanwhile
      if (whiteout) {
        out->whiteouts.insert(name);
        continue;
      }
      type = IFTODT(st.st_mode);
    }
    out->entries.emplace(std::move(name), UpperEntry{e->d_ino, type});
  }
  ::closedir(d);
  return 0;
}

uint64_t UpperCookie(std::string_view name) {
  return kUpperCookie | (std::hash<std::string_view>{}(name) & (kUpperCookie - 1));
}

// Fills one READDIR reply; false once it is full.
class DirentBuffer {
 public:
  DirentBuffer(fuse_req_t req, size_t size) : req_(req), buf_(size) {}
  bool Add(const std::string& name, uint64_t ino, mode_t type, uint64_t next) {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = type;
    size_t need = fuse_add_direntry(req_, buf_.data() + pos_, buf_.size() - pos_, name.c_str(), &st,
                                    static_cast<off_t>(next));
    if (need > buf_.size() - pos_) return false;
    pos_ += need;
    return true;
  }
  // READDIRPLUS: the entry with its node and attributes (e.ino 0: no node, as "." and "..").
  bool AddPlus(const std::string& name, const fuse_entry_param& e, uint64_t next) {
    size_t need = fuse_add_direntry_plus(req_, buf_.data() + pos_, buf_.size() - pos_, name.c_str(), &e,
                                         static_cast<off_t>(next));
    if (need > buf_.size() - pos_) return false;
    pos_ += need;
    return true;
  }
  // 0 once the kernel has the reply.
  int Reply() { return fuse_reply_buf(req_, buf_.data(), pos_); }

 private:
  fuse_req_t req_;
  std::vector<char> buf_;
  size_t pos_ = 0;
};

}  // namespace

void LayerFs::OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (no_opendir_) return (void)fuse_reply_err(req, ENOSYS);
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

int LayerFs::ListFrom(Node* node, uint64_t pos, const DirentSink& add) {
  UpperDir upper;
  int dfd = node->upper.load(std::memory_order_acquire) ? node->dir_fd.load(std::memory_order_acquire) : -1;
  if (dfd >= 0) {
    if (int r = ReadUpperDir(format_, dfd, options_.nodiratime, &upper); r != 0) return r;
  }
  if (pos < 1 && !add(".", 1, S_IFDIR, 1)) return 0;
  if (pos < 2 && !add("..", 1, S_IFDIR, 2)) return 0;
  // An upper entry shows the inode a lookup gives it: the lower one it was copied from.
  auto upper_ino = [&](const std::string& name, const UpperEntry& e) {
    auto origin = format_.Origin(dfd, name);
    return origin && *origin < index_.size() ? LowerIno(*origin) : InodeTable::UpperKey(e.ino);
  };
  uint32_t lower = node->lower.load(std::memory_order_acquire);
  if (lower != kNoLower && pos < kUpperCookie) {
    const MergedNode& dir = index_.node(lower);
    for (uint64_t k = pos > 2 ? pos - 2 : 0; k < dir.child_count; ++k) {
      uint32_t c = dir.first_child + static_cast<uint32_t>(k);
      std::string name(index_.name(c));
      auto it = upper.entries.find(name);
      if (it == upper.entries.end() && upper.whiteouts.count(name)) continue;
      bool ok = it == upper.entries.end() ? add(name, LowerIno(c), index_.node(c).mode & S_IFMT, k + 3)
                                          : add(name, upper_ino(name, it->second), DTTOIF(it->second.type), k + 3);
      if (!ok) return 0;
    }
  }
  std::vector<std::pair<uint64_t, const std::string*>> only_upper;
  for (const auto& [name, e] : upper.entries)
    if (lower == kNoLower || !index_.Lookup(lower, name)) only_upper.emplace_back(UpperCookie(name), &name);
  std::sort(only_upper.begin(), only_upper.end());
  auto from = std::upper_bound(only_upper.begin(), only_upper.end(), std::make_pair(pos, static_cast<const std::string*>(nullptr)),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto it = from; it != only_upper.end(); ++it) {
    const UpperEntry& e = upper.entries.at(*it->second);
    if (!add(*it->second, upper_ino(*it->second, e), DTTOIF(e.type), it->first)) break;
  }
  return 0;
}

void LayerFs::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DirentBuffer out(req, size);
  auto add = [&](const std::string& name, uint64_t child, mode_t type, uint64_t next) { return out.Add(name, child, type, next); };
  if (int r = ListFrom(ToNode(ino), static_cast<uint64_t>(off), add); r != 0) return (void)fuse_reply_err(req, -r);
  out.Reply();
}

// Each entry is looked up as LOOKUP would (LookupChild); one that vanished since the listing
// was read goes out without a node. References of entries that did not fit, or of a reply
// the kernel never got, are dropped again.
void LayerFs::ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  std::shared_ptr<Node> dir = Shared(ino);
  DirentBuffer out(req, size);
  std::vector<std::shared_ptr<Node>> given;
  auto add = [&](const std::string& name, uint64_t child_ino, mode_t type, uint64_t next) {
    fuse_entry_param e{};
    e.attr.st_ino = child_ino;
    e.attr.st_mode = type;
    std::shared_ptr<Node> child;
    if (name != "." && name != ".." && LookupChild(dir, name, &child) == 0) {
      if (Attr(child.get(), &e.attr) == 0) {
        Show(&e.attr);
        e.ino = reinterpret_cast<fuse_ino_t>(child.get());
        e.attr_timeout = Timeout(child.get());
        e.entry_timeout = EntryTimeout(child.get());
      } else {
        table_.Forget(child.get(), 1);
        child.reset();
      }
    }
    bool fits = out.AddPlus(name, e, next);
    if (child && fits) given.push_back(std::move(child));
    else if (child)
      table_.Forget(child.get(), 1);
    return fits;
  };
  if (int r = ListFrom(dir.get(), static_cast<uint64_t>(off), add); r != 0) {
    for (const auto& n : given) table_.Forget(n.get(), 1);
    return (void)fuse_reply_err(req, -r);
  }
  if (out.Reply() != 0)
    for (const auto& n : given) table_.Forget(n.get(), 1);
}

void LayerFs::ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) { fuse_reply_err(req, 0); }

void LayerFs::MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  std::shared_ptr<Node> node;
  auto make = [&](int dirfd, const std::string& n) { return ::mkdirat(dirfd, n.c_str(), 0700) == 0 ? 0 : -errno; };
  int r = NewEntry(req, Shared(parent), name, S_IFDIR | mode, make, &node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  ReplyEntry(req, node);
}

void LayerFs::RmDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Node> dir = Shared(parent);
  std::shared_ptr<Node> child;
  int r = LookupChild(dir, name, &child);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  if (!child->is_dir) r = -ENOTDIR;
  if (r == 0) r = IsMergedDirEmpty(child);
  if (r == 0) r = DeleteEntry(dir, name, true);
  if (r == 0) r = SyncDirChange(dir->dir_fd.load());
  if (r == 0) Invalidate(dir.get(), false);  // a GETATTR in flight must not re-cache the old attributes
  if (r == 0) table_.Detach(child.get());
  table_.Forget(child.get(), 1);
  fuse_reply_err(req, -r);
}

int LayerFs::IsMergedDirEmpty(const std::shared_ptr<Node>& dir) {
  std::unordered_set<std::string> hidden;
  int dfd = dir->upper.load() ? dir->dir_fd.load() : -1;
  if (dfd >= 0) {
    int fd = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return -errno;
    }
    int r = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (UpperFormat::IsWhiteoutFileName(n)) {
        hidden.insert(n.substr(4));
        continue;
      }
      struct stat st;
      bool whiteout = false;
      if (format_.StatChild(dfd, n, &st, &whiteout) == 0 && whiteout) {
        hidden.insert(n);
        continue;
      }
      r = -ENOTEMPTY;
      break;
    }
    ::closedir(d);
    if (r != 0) return r;
  }
  if (dir->lower == kNoLower) return 0;
  const MergedNode& n = index_.node(dir->lower);
  for (uint32_t c = n.first_child; c < n.first_child + n.child_count; ++c)
    if (!hidden.count(std::string(index_.name(c)))) return -ENOTEMPTY;
  return 0;
}

}  // namespace layerfs
