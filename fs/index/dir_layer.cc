#include "fs/index/dir_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "fs/index/upper_format.h"

namespace layerfs {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kMetaPrefix = ".wh..wh.";  // aufs/overlay bookkeeping names

// An entry with the host identity needed to group hard links once the walk is done.
struct Walked {
  LayerEntry entry;
  dev_t dev = 0;
  ino_t ino = 0;
};

EntryType TypeOf(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR: return EntryType::kDirectory;
    case S_IFLNK: return EntryType::kSymlink;
    case S_IFIFO: return EntryType::kFifo;
    case S_IFCHR: return EntryType::kCharDevice;
    case S_IFBLK: return EntryType::kBlockDevice;
    case S_IFSOCK: return EntryType::kSocket;
    default: return EntryType::kRegular;
  }
}

// All xattrs of path (not following a symlink), sorted by name; -errno on failure.
int ReadXattrs(const std::string& path, std::vector<std::pair<std::string, std::string>>* out) {
  std::string names(1024, '\0');
  ssize_t n;
  while ((n = ::llistxattr(path.c_str(), names.data(), names.size())) < 0) {
    if (errno == ENOTSUP) return 0;
    if (errno != ERANGE) return -errno;
    ssize_t need = ::llistxattr(path.c_str(), nullptr, 0);
    if (need < 0) return -errno;
    names.resize(need + 1);
  }
  for (size_t off = 0; off < static_cast<size_t>(n);) {
    std::string name(names.c_str() + off);
    off += name.size() + 1;
    std::string value(256, '\0');
    ssize_t v;
    while ((v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size())) < 0) {
      if (errno == ENODATA) break;  // removed while we looked
      if (errno != ERANGE) return -errno;
      ssize_t need = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (need < 0) return -errno;
      value.resize(need);
    }
    if (v < 0) continue;
    value.resize(v);
    out->emplace_back(std::move(name), std::move(value));
  }
  std::sort(out->begin(), out->end());
  return 0;
}

const std::string* FindXattr(const std::vector<std::pair<std::string, std::string>>& xattrs, std::string_view name) {
  for (const auto& [k, v] : xattrs)
    if (k == name) return &v;
  return nullptr;
}

// The overlay.opaque value in either namespace, or fuse-overlayfs's ("" if none).
std::string OpaqueValue(const std::vector<std::pair<std::string, std::string>>& xattrs) {
  for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"})
    if (const std::string* v = FindXattr(xattrs, name)) return *v;
  return "";
}

bool HasXattrWhiteout(const std::vector<std::pair<std::string, std::string>>& xattrs) {
  return FindXattr(xattrs, "trusted.overlay.whiteout") || FindXattr(xattrs, "user.overlay.whiteout");
}

// containers/storage writes user.containers.override_stat; an upper fuse-overlayfs wrote with
// xattr_permissions=1|2 (force_mask) becomes a lower with its own names: read as it reads them.
void ApplyOverride(const std::vector<std::pair<std::string, std::string>>& xattrs, LayerEntry* e) {
  const std::string* v = nullptr;
  for (const char* key : {UpperFormat::kPrivilegedOverride, UpperFormat::kContainersOverride, UpperFormat::kUserOverride})
    if (v == nullptr) v = FindXattr(xattrs, key);
  std::optional<StatOverride> o = v ? UpperFormat::ParseOverride(*v) : std::nullopt;
  if (!o) return;
  e->uid = o->uid;
  e->gid = o->gid;
  e->mode = o->mode & 07777;
}

void DropPrivate(std::vector<std::pair<std::string, std::string>>* xattrs) {
  std::erase_if(*xattrs, [](const auto& kv) { return UpperFormat::IsPrivateXattr(kv.first); });
}

class Walker {
 public:
  explicit Walker(std::string root) : root_(std::move(root)) {}

  Result<LayerIndex> Run() {
    // containers/storage names each lower by a symlink (overlay/l/<id> -> ../<layer>/diff).
    std::error_code ec;
    std::filesystem::path real = std::filesystem::canonical(root_, ec);
    if (ec) return Status::Error(ec.value(), "lower dir " + root_ + ": " + ec.message());
    root_ = real.string();
    struct stat st;
    if (::lstat(root_.c_str(), &st) != 0) return Status::FromErrno("lower dir " + root_);
    if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, "lower dir " + root_ + ": not a directory");
    Walked root;
    bool xwhiteouts = false;
    if (!Describe("", root_, st, &root, &xwhiteouts)) return error_;
    DropPrivate(&root.entry.xattrs);
    Add(std::move(root));
    tasks_.run([this, xwhiteouts] { WalkDir("", xwhiteouts); });
    tasks_.wait();
    if (failed_) return error_;
    return Finish();
  }

 private:
  void Fail(const Status& st) {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!failed_) error_ = st;
    failed_ = true;
  }
  void Add(Walked&& w) { out_.local().push_back(std::move(w)); }
  std::string Full(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  // Fills w from the stat and xattrs of rel; false (and Fail) on an I/O error. *xwhiteouts:
  // a directory whose children may be xattr whiteouts (overlay.opaque = "x").
  bool Describe(const std::string& rel, const std::string& full, const struct stat& st, Walked* w, bool* xwhiteouts) {
    LayerEntry& e = w->entry;
    e.path = rel;
    e.type = TypeOf(st.st_mode);
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = e.type == EntryType::kRegular ? static_cast<uint64_t>(st.st_size) : 0;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) e.rdev = st.st_rdev;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    if (int r = ReadXattrs(full, &e.xattrs); r != 0) {
      Fail(Status::FromErrno(-r, "lower " + full + ": xattrs"));
      return false;
    }
    if (e.type == EntryType::kDirectory) {
      std::string opaque = OpaqueValue(e.xattrs);
      e.opaque = opaque == "y";
      *xwhiteouts = opaque == "x";
    }
    if (e.type == EntryType::kSymlink) {
      std::string target(st.st_size > 0 ? st.st_size + 1 : 4096, '\0');
      ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
      if (n < 0) {
        Fail(Status::FromErrno("lower " + full + ": readlink"));
        return false;
      }
      target.resize(n);
      e.link_target = std::move(target);
      e.size = e.link_target.size();
    }
    ApplyOverride(e.xattrs, &e);
    return true;
  }

  // Lists one directory; each subdirectory becomes a task of its own.
  void WalkDir(const std::string& rel, bool xwhiteouts) {
    if (failed_) return;
    std::string full = Full(rel);
    int fd = ::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
    if (d == nullptr) {
      if (fd >= 0) ::close(fd);
      return Fail(Status::FromErrno("lower dir " + full));
    }
    while (struct dirent* de = ::readdir(d)) {
      std::string_view name = de->d_name;
      if (name == "." || name == "..") continue;
      if (!Entry(::dirfd(d), rel, std::string(name), xwhiteouts)) break;
    }
    ::closedir(d);
  }

  bool Entry(int dirfd, const std::string& dir, const std::string& name, bool xwhiteouts) {
    std::string rel = dir.empty() ? name : dir + "/" + name;
    if (name == kOpaqueMarker) {
      LayerEntry marker;  // merged into its directory's entry by Finish
      marker.path = dir;
      marker.type = EntryType::kDirectory;
      marker.opaque = true;
      opaque_markers_.local().push_back(std::move(marker));
      return true;
    }
    if (name.starts_with(kMetaPrefix)) return true;
    if (name.starts_with(kWhiteoutPrefix)) {
      std::string hidden = name.substr(kWhiteoutPrefix.size());
      Walked w;
      w.entry.path = dir.empty() ? hidden : dir + "/" + hidden;
      w.entry.type = EntryType::kWhiteout;
      Add(std::move(w));
      return true;
    }
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      Fail(Status::FromErrno("lower " + Full(rel)));
      return false;
    }
    Walked w;
    if (UpperFormat::IsWhiteout(st)) {
      w.entry.path = rel;
      w.entry.type = EntryType::kWhiteout;
      Add(std::move(w));
      return true;
    }
    bool child_xwhiteouts = false;
    if (!Describe(rel, Full(rel), st, &w, &child_xwhiteouts)) return false;
    if (xwhiteouts && w.entry.type == EntryType::kRegular && HasXattrWhiteout(w.entry.xattrs)) {
      w.entry = LayerEntry();
      w.entry.path = rel;
      w.entry.type = EntryType::kWhiteout;
      Add(std::move(w));
      return true;
    }
    DropPrivate(&w.entry.xattrs);
    bool is_dir = w.entry.type == EntryType::kDirectory;
    Add(std::move(w));
    if (is_dir) tasks_.run([this, rel, child_xwhiteouts] { WalkDir(rel, child_xwhiteouts); });
    return true;
  }

  // Sorted entries, opaque markers applied, hard links grouped by inode.
  LayerIndex Finish() {
    std::vector<Walked> all;
    for (auto& part : out_) std::move(part.begin(), part.end(), std::back_inserter(all));
    tbb::parallel_sort(all.begin(), all.end(), [](const Walked& a, const Walked& b) { return a.entry.path < b.entry.path; });
    std::map<std::string, bool> opaque;
    for (auto& part : opaque_markers_)
      for (auto& m : part) opaque[m.path] = true;
    std::map<std::pair<dev_t, ino_t>, uint32_t> links;
    for (const Walked& w : all)
      if (IsLinkable(w)) ++links[{w.dev, w.ino}];
    uint32_t next_group = 0;
    std::map<std::pair<dev_t, ino_t>, uint32_t> groups;
    LayerIndex index;
    index.entries().reserve(all.size());
    for (Walked& w : all) {
      if (w.entry.type == EntryType::kDirectory && opaque.count(w.entry.path)) w.entry.opaque = true;
      if (IsLinkable(w) && links[{w.dev, w.ino}] > 1) {
        auto [it, added] = groups.try_emplace({w.dev, w.ino}, next_group + 1);
        if (added) ++next_group;
        w.entry.hardlink_group = it->second;
      }
      index.entries().push_back(std::move(w.entry));
    }
    return index;
  }

  static bool IsLinkable(const Walked& w) {
    return w.entry.type != EntryType::kDirectory && w.entry.type != EntryType::kWhiteout && w.ino != 0;
  }

  std::string root_;
  tbb::task_group tasks_;
  tbb::enumerable_thread_specific<std::vector<Walked>> out_;
  tbb::enumerable_thread_specific<std::vector<LayerEntry>> opaque_markers_;
  std::atomic<bool> failed_{false};
  std::mutex error_mu_;
  Status error_ = Status::Ok();
};

}  // namespace

Result<LayerIndex> DirLayer::Walk(const std::filesystem::path& dir) {
  Walker walker(dir.string());
  return walker.Run();
}

namespace {

Result<MergedIndex> WalkAndMerge(const std::vector<std::filesystem::path>& lowers, const DirLayer::EntryFix& fix,
                                 const DirLayer::LowerReader& reader) {
  std::vector<Result<LayerIndex>> indexes(lowers.size(), Status::Error(EINVAL, "not walked"));
  // The walk waits on the disk more than it computes (cold caches: an inode read per entry),
  // so it runs on more threads than cores to keep many reads in flight.
  constexpr int kWalkThreads = 8;
  tbb::global_control allow(tbb::global_control::max_allowed_parallelism, kWalkThreads);
  tbb::task_arena arena(kWalkThreads);
  arena.execute([&] {
    tbb::parallel_for(size_t{0}, lowers.size(), [&](size_t i) {
      indexes[i] = reader ? reader(lowers[i]) : DirLayer::Walk(lowers[i]);
    });
  });
  std::vector<const LayerIndex*> layers;
  for (size_t i = 0; i < indexes.size(); ++i) {
    if (!indexes[i].ok()) return indexes[i].status();
    if (fix)
      for (LayerEntry& e : indexes[i]->entries()) fix(i, &e);
    layers.push_back(&*indexes[i]);
  }
  return MergedIndex::Build(layers, DirLayer::ChainId(lowers));
}

}  // namespace

Result<MergedIndex> DirLayer::BuildMerged(const std::vector<std::filesystem::path>& lowers, const EntryFix& fix,
                                          const LowerReader& reader) {
  if (lowers.empty()) return Status::Error(EINVAL, "no lower directory given");
  if (lowers.size() > 65535) return Status::Error(EINVAL, "too many lower directories (at most 65535)");
  // The walk's per-entry strings die once merged; every container runs a daemon of its own, so
  // their pages must go back. malloc_trim returns free chunks, but the walk threads' arenas end
  // with their memory in one free top chunk that only a free() beyond the trim threshold
  // shrinks, and glibc raises that threshold as large blocks come and go: fix it at 1 MiB.
  ::mallopt(M_TRIM_THRESHOLD, 1 << 20);
  Result<MergedIndex> merged = WalkAndMerge(lowers, fix, reader);
  ::malloc_trim(0);
  return merged;
}

Digest DirLayer::ChainId(const std::vector<std::filesystem::path>& lowers) {
  std::string joined;
  for (const auto& dir : lowers) joined += std::filesystem::absolute(dir).lexically_normal().string() + '\n';
  return Sha256Of(joined);
}

}  // namespace layerfs
