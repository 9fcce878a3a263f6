// Directory operations: opendir, readdir, releasedir, mkdir, rmdir.
//
// A directory with no upper copy is listed straight from the merged index: offsets are child
// positions (stable for the life of the mount). A directory with an upper copy is listed from
// a snapshot taken at opendir (upper entries minus whiteouts, then lower entries not hidden),
// so telldir/seekdir offsets stay valid while the directory changes, as POSIX asks.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <unordered_set>

#include "fs/layer_fs.h"

namespace layerfs {

namespace {

struct DirEntry {
  std::string name;
  uint64_t ino;
  mode_t type;
};

struct DirHandle {
  bool from_index = false;
  uint32_t lower = kNoLower;
  std::vector<DirEntry> entries;
};

mode_t DTypeToMode(unsigned char d) {
  switch (d) {
    case DT_DIR: return S_IFDIR;
    case DT_LNK: return S_IFLNK;
    case DT_FIFO: return S_IFIFO;
    case DT_CHR: return S_IFCHR;
    case DT_BLK: return S_IFBLK;
    case DT_SOCK: return S_IFSOCK;
    default: return S_IFREG;
  }
}

}  // namespace

void LayerFs::OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node* node = ToNode(ino);
  auto h = std::make_unique<DirHandle>();
  h->lower = node->lower;
  int dfd = node->dir_fd.load(std::memory_order_acquire);
  if (!node->upper.load(std::memory_order_acquire) || dfd < 0) {
    h->from_index = true;
    fi->fh = reinterpret_cast<uint64_t>(h.release());
    return (void)fuse_reply_open(req, fi);
  }
  int fd = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return (void)fuse_reply_err(req, errno);
  }
  std::unordered_set<std::string> hidden;  // names present or whited out in the upper
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (UpperFormat::IsWhiteoutFileName(name)) {
      if (name != ".wh..wh..opq") hidden.insert(name.substr(4));
      continue;
    }
    hidden.insert(name);
    struct stat st;
    bool whiteout = false;
    if (e->d_type == DT_CHR || e->d_type == DT_UNKNOWN) {
      if (format_.StatChild(dfd, name, &st, &whiteout) != 0 || whiteout) continue;
    }
    auto origin = format_.Origin(dfd, name);
    bool keeps = origin && *origin < index_.size();
    h->entries.push_back({name, keeps ? LowerIno(*origin) : InodeTable::UpperKey(e->d_ino), DTypeToMode(e->d_type)});
  }
  ::closedir(d);
  if (node->lower != kNoLower) {
    const MergedNode& dir = index_.node(node->lower);
    for (uint32_t c = dir.first_child; c < dir.first_child + dir.child_count; ++c) {
      std::string name(index_.name(c));
      if (!hidden.count(name)) h->entries.push_back({name, LowerIno(c), index_.node(c).mode & S_IFMT});
    }
  }
  fi->fh = reinterpret_cast<uint64_t>(h.release());
  fuse_reply_open(req, fi);
}

// Offsets: 1 = ".", 2 = "..", 3 + k = entry k.
void LayerFs::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  auto* h = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t pos = 0;
  auto add = [&](std::string_view name, uint64_t entry_ino, mode_t type, off_t next) {
    struct stat st{};
    st.st_ino = entry_ino;
    st.st_mode = type;
    std::string n(name);
    size_t need = fuse_add_direntry(req, buf.data() + pos, size - pos, n.c_str(), &st, next);
    if (need > size - pos) return false;
    pos += need;
    return true;
  };
  uint64_t count = h->from_index ? (h->lower == kNoLower ? 0 : index_.node(h->lower).child_count) : h->entries.size();
  for (uint64_t i = off; i < count + 2; ++i) {
    bool ok;
    if (i == 0) ok = add(".", 1, S_IFDIR, 1);
    else if (i == 1) ok = add("..", 1, S_IFDIR, 2);
    else if (h->from_index) {
      uint32_t c = index_.node(h->lower).first_child + static_cast<uint32_t>(i - 2);
      ok = add(index_.name(c), LowerIno(c), index_.node(c).mode & S_IFMT, static_cast<off_t>(i + 1));
    } else {
      const DirEntry& e = h->entries[i - 2];
      ok = add(e.name, e.ino, e.type, static_cast<off_t>(i + 1));
    }
    if (!ok) break;
  }
  fuse_reply_buf(req, buf.data(), pos);
}

void LayerFs::ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

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
