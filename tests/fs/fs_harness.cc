#include "tests/fs/fs_harness.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "fs/mount/mount.h"
#include "fs/mount/overlay_options.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs::fstest {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  chmod(tmpl.c_str(), 0755);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---------------------------------------------------------------------------------------------
// Random layers

namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : gen_() % n; }
  bool Chance(int percent) { return static_cast<int>(Below(100)) < percent; }
  template <class T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = gen_();
      memcpy(s.data() + i, &r, std::min<size_t>(8, n - i));
    }
    return s;
  }

 private:
  std::mt19937_64 gen_;
};

std::string Parent(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string Child(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

bool Under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

// Builds layers while tracking the merged view, so upper layers act on what exists.
class LayerGenerator {
 public:
  explicit LayerGenerator(uint64_t seed) : rng_(seed) {}

  std::vector<LayerSpec> Generate() {
    std::vector<LayerSpec> layers;
    int count = 1 + rng_.Below(4);
    for (int i = 0; i < count; ++i) {
      layer_.clear();
      if (i == 0) FillBase();
      else
        FillUpper();
      layers.push_back(Finish());
    }
    return layers;
  }

 private:
  void FillBase() {
    int dirs = 2 + rng_.Below(4);
    for (int i = 0; i < dirs; ++i) AddDir(NewName(RandomDir(), "d"), false);
    int files = 5 + rng_.Below(8);
    for (int i = 0; i < files; ++i) AddFile(NewName(RandomDir(), "f"));
    int symlinks = 1 + rng_.Below(3);
    for (int i = 0; i < symlinks; ++i) AddSymlink(NewName(RandomDir(), "s"));
    int links = rng_.Below(3);
    for (int i = 0; i < links; ++i) AddHardlink();
    if (rng_.Chance(50)) AddFifo(NewName(RandomDir(), "p"));
  }

  void FillUpper() {
    int changes = 2 + rng_.Below(6);
    for (int i = 0; i < changes; ++i) {
      switch (rng_.Below(8)) {
        case 0:
        case 1: ReplaceFile(); break;
        case 2: Whiteout(); break;
        case 3: Opaque(); break;
        case 4: AddFile(NewName(RandomDir(), "f")); break;
        case 5: AddDir(NewName(RandomDir(), "d"), false); break;
        case 6: AddHardlink(); break;
        case 7: AddSymlink(NewName(RandomDir(), "s")); break;
      }
    }
  }

  std::vector<std::string> Dirs() const {
    std::vector<std::string> dirs{""};
    for (const auto& [path, e] : merged_)
      if (e.type == EntryType::kDirectory) dirs.push_back(path);
    return dirs;
  }
  std::vector<std::string> PathsOfType(EntryType type) const {
    std::vector<std::string> out;
    for (const auto& [path, e] : merged_)
      if (e.type == type) out.push_back(path);
    return out;
  }
  std::string RandomDir() { return rng_.Pick(Dirs()); }

  std::string NewName(const std::string& dir, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string path = Child(dir, prefix + std::to_string(i));
      if (!merged_.count(path) && !layer_.count(path)) return path;
    }
  }

  SpecEntry Meta(const std::string& path, EntryType type) {
    static const uint32_t kModes[] = {0644, 0755, 0600, 0444, 0640, 04755};
    static const uint32_t kDirModes[] = {0755, 0700, 0775, 01777};
    static const uint32_t kOwners[] = {0, 1000, 33};
    SpecEntry e;
    e.path = path;
    e.type = type;
    e.mode = type == EntryType::kDirectory ? kDirModes[rng_.Below(4)] : kModes[rng_.Below(6)];
    if (type == EntryType::kSymlink) e.mode = 0777;
    e.uid = kOwners[rng_.Below(3)];
    e.gid = kOwners[rng_.Below(3)];
    e.mtime = 1200000000 + rng_.Below(200000000);
    if ((type == EntryType::kRegular || type == EntryType::kDirectory) && rng_.Chance(25))
      e.xattrs.push_back({"user.k" + std::to_string(rng_.Below(3)), "v" + std::to_string(rng_.Below(1000))});
    return e;
  }

  // Parents must be in the layer (as real layers have them), with the metadata already merged.
  void EnsureParents(const std::string& path) {
    std::string dir = Parent(path);
    if (dir.empty() || layer_.count(dir)) return;
    EnsureParents(dir);
    SpecEntry e = merged_.at(dir);
    e.opaque = false;
    layer_[dir] = e;
  }

  void Put(const SpecEntry& e) {
    // One path once per layer, and nothing of this layer below an entry that replaces a dir.
    if (layer_.count(e.path) && layer_.at(e.path).type != e.type) return;
    if (e.type != EntryType::kDirectory || e.opaque)
      for (const auto& [path, unused] : layer_)
        if (Under(path, e.path)) return;
    EnsureParents(e.path);
    layer_[e.path] = e;
    for (auto it = merged_.begin(); it != merged_.end();)
      it = Under(it->first, e.path) && (e.type != EntryType::kDirectory || e.opaque) ? merged_.erase(it) : std::next(it);
    if (e.type == EntryType::kWhiteout) merged_.erase(e.path);
    else
      merged_[e.path] = e;
  }

  void AddDir(const std::string& path, bool opaque) {
    SpecEntry e = Meta(path, EntryType::kDirectory);
    e.opaque = opaque;
    Put(e);
  }

  void AddFile(const std::string& path) {
    SpecEntry e = Meta(path, EntryType::kRegular);
    static const size_t kSizes[] = {0, 17, 4096, 70000, 200000};
    size_t size = kSizes[rng_.Below(5)];
    if (size) size += rng_.Below(size);
    e.content = rng_.Bytes(size);
    Put(e);
  }

  void AddSymlink(const std::string& path) {
    SpecEntry e = Meta(path, EntryType::kSymlink);
    auto files = PathsOfType(EntryType::kRegular);
    switch (rng_.Below(4)) {
      case 0: e.target = "/etc/hostname"; break;
      case 1: e.target = "nowhere"; break;
      default: e.target = files.empty() ? "x" : "/" + rng_.Pick(files);
    }
    Put(e);
  }

  void AddFifo(const std::string& path) { Put(Meta(path, EntryType::kFifo)); }

  // A hard link to a regular file of this layer (tar hard links stay within one layer).
  void AddHardlink() {
    std::vector<std::string> files;
    for (const auto& [path, e] : layer_)
      if (e.type == EntryType::kRegular && e.hardlink.empty()) files.push_back(path);  // not links of links
    if (files.empty()) return;
    std::string target = rng_.Pick(files);
    SpecEntry e = layer_.at(target);
    e.path = NewName(RandomDir(), "h");
    e.hardlink = target;
    EnsureParents(e.path);
    layer_[e.path] = e;  // keeps the name taken; Finish() moves it after its target
    merged_[e.path] = e;
  }

  void ReplaceFile() {
    auto files = PathsOfType(EntryType::kRegular);
    if (files.empty() || rng_.Chance(20)) {
      // Type change: a file over a lower dir or a dir over a lower file.
      auto dirs = PathsOfType(EntryType::kDirectory);
      if (!dirs.empty() && rng_.Chance(50)) return AddFile(rng_.Pick(dirs));
      if (!files.empty() && !layer_.count(files[0])) return AddDir(rng_.Pick(files), false);
      return;
    }
    std::string path = rng_.Pick(files);
    if (!layer_.count(path)) AddFile(path);
  }

  void Whiteout() {
    std::vector<std::string> paths;
    for (const auto& [path, e] : merged_)
      if (!layer_.count(path)) paths.push_back(path);
    if (paths.empty()) return;
    SpecEntry e;
    e.path = rng_.Pick(paths);
    e.type = EntryType::kWhiteout;
    Put(e);
  }

  void Opaque() {
    std::vector<std::string> dirs;
    for (const auto& path : PathsOfType(EntryType::kDirectory))
      if (!layer_.count(path)) dirs.push_back(path);
    if (dirs.empty()) return;
    std::string dir = rng_.Pick(dirs);
    AddDir(dir, true);
    int children = rng_.Below(3);
    for (int i = 0; i < children; ++i) AddFile(NewName(dir, "f"));
  }

  LayerSpec Finish() {
    LayerSpec out;
    for (auto& [path, e] : layer_)  // sorted: parents first
      if (e.hardlink.empty()) out.push_back(e);
    for (auto& [path, e] : layer_)  // hard links after their targets
      if (!e.hardlink.empty()) out.push_back(e);
    return out;
  }

  Rng rng_;
  std::map<std::string, SpecEntry> merged_;
  std::map<std::string, SpecEntry> layer_;
};

}  // namespace

std::vector<LayerSpec> RandomLayers(uint64_t seed) { return LayerGenerator(seed).Generate(); }

std::vector<std::string> PathsOf(const std::vector<LayerSpec>& layers) {
  std::set<std::string> paths{""};
  for (const auto& layer : layers)
    for (const auto& e : layer) paths.insert(e.path);
  return {paths.begin(), paths.end()};
}

// ---------------------------------------------------------------------------------------------
// Materialising layers

namespace {

Status Fail(const std::string& what) { return Status::FromErrno(what); }

Status CreateEntry(const SpecEntry& e, const fs::path& dir) {
  std::string p = (dir / e.path).string();
  if (!e.hardlink.empty())
    return link((dir / e.hardlink).c_str(), p.c_str()) == 0 ? Status::Ok() : Fail("link " + p);
  switch (e.type) {
    case EntryType::kDirectory:
      if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return Fail("mkdir " + p);
      if (e.opaque && lsetxattr(p.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) return Fail("opaque " + p);
      return Status::Ok();
    case EntryType::kRegular: {
      int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      if (fd < 0) return Fail("create " + p);
      bool ok = write(fd, e.content.data(), e.content.size()) == static_cast<ssize_t>(e.content.size());
      close(fd);
      return ok ? Status::Ok() : Fail("write " + p);
    }
    case EntryType::kSymlink:
      return symlink(e.target.c_str(), p.c_str()) == 0 ? Status::Ok() : Fail("symlink " + p);
    case EntryType::kFifo:
      return mknod(p.c_str(), S_IFIFO | 0600, 0) == 0 ? Status::Ok() : Fail("mkfifo " + p);
    case EntryType::kWhiteout:
      return mknod(p.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0 ? Status::Ok() : Fail("whiteout " + p);
    default:
      return Status::Error(EINVAL, "unsupported spec entry " + e.path);
  }
}

Status ApplyMeta(const SpecEntry& e, const fs::path& dir) {
  if (e.type == EntryType::kWhiteout || !e.hardlink.empty()) return Status::Ok();
  std::string p = (dir / e.path).string();
  if (lchown(p.c_str(), e.uid, e.gid) != 0) return Fail("chown " + p);
  if (e.type != EntryType::kSymlink && chmod(p.c_str(), e.mode) != 0) return Fail("chmod " + p);
  for (const auto& [name, value] : e.xattrs)
    if (lsetxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) return Fail("setxattr " + p);
  timespec times[2] = {{e.mtime, 0}, {e.mtime, 0}};
  if (utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return Fail("utimens " + p);
  return Status::Ok();
}

}  // namespace

Status WriteOverlayLower(const LayerSpec& layer, const fs::path& dir) {
  fs::create_directories(dir);
  chmod(dir.c_str(), 0755);
  for (const auto& e : layer) RETURN_IF_ERROR(CreateEntry(e, dir));
  // Children first, so creating entries does not move a directory's mtime afterwards.
  for (auto it = layer.rbegin(); it != layer.rend(); ++it) RETURN_IF_ERROR(ApplyMeta(*it, dir));
  return Status::Ok();
}

namespace {

la_ssize_t AppendToString(struct archive*, void* out, const void* buf, size_t len) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

void FillTarEntry(const SpecEntry& e, archive_entry* entry) {
  archive_entry_set_pathname(entry, e.path.c_str());
  archive_entry_set_uid(entry, e.uid);
  archive_entry_set_gid(entry, e.gid);
  archive_entry_set_mtime(entry, e.mtime, 0);
  archive_entry_set_perm(entry, e.mode);
  for (const auto& [name, value] : e.xattrs)
    archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
  switch (e.type) {
    case EntryType::kDirectory: archive_entry_set_filetype(entry, AE_IFDIR); break;
    case EntryType::kSymlink:
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, e.target.c_str());
      break;
    case EntryType::kFifo: archive_entry_set_filetype(entry, AE_IFIFO); break;
    default:
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, e.hardlink.empty() ? e.content.size() : 0);
  }
  if (!e.hardlink.empty()) archive_entry_set_hardlink(entry, e.hardlink.c_str());
}

std::string WhiteoutName(const std::string& path) {
  std::string dir = Parent(path), base = path.substr(dir.empty() ? 0 : dir.size() + 1);
  return Child(dir, ".wh." + base);
}

}  // namespace

Result<std::string> BuildLayerTar(const LayerSpec& layer) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &out, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    archive_write_free(a);
    return Status::Error(EIO, "tar open failed");
  }
  Status status;
  auto put = [&](archive_entry* entry, const std::string& data) {
    if (archive_write_header(a, entry) != ARCHIVE_OK ||
        (!data.empty() && archive_write_data(a, data.data(), data.size()) != static_cast<la_ssize_t>(data.size())))
      status = Status::Error(EIO, std::string("tar write: ") + archive_error_string(a));
    archive_entry_free(entry);
  };
  for (const auto& e : layer) {
    archive_entry* entry = archive_entry_new();
    if (e.type == EntryType::kWhiteout) {
      SpecEntry marker;
      marker.path = WhiteoutName(e.path);
      FillTarEntry(marker, entry);
      put(entry, "");
      continue;
    }
    FillTarEntry(e, entry);
    put(entry, e.hardlink.empty() ? e.content : "");
    if (e.type == EntryType::kDirectory && e.opaque) {
      SpecEntry marker;
      marker.path = Child(e.path, ".wh..wh..opq");
      entry = archive_entry_new();
      FillTarEntry(marker, entry);
      put(entry, "");
    }
  }
  archive_write_close(a);
  archive_write_free(a);
  if (!status.ok()) return status;
  return out;
}

Result<Digest> AddLayer(const Store& store, const std::string& tar) {
  ASSIGN_OR_RETURN(Digest digest, BlobStore(store).PutBytes(tar));
  RETURN_IF_ERROR(LayerStore(store).Ensure({LayerRequest{digest, digest}}));
  return digest;
}

// ---------------------------------------------------------------------------------------------
// Mounts

MountConfig ContainerMountConfig(const fs::path& store_root, const std::vector<Digest>& layers, const fs::path& dir) {
  MountConfig c;
  c.store_root = store_root;
  c.layers = layers;
  c.upper_dir = dir / "upper";
  c.work_dir = dir / "work";
  c.mountpoint = dir / "mnt";
  for (const fs::path& d : {c.upper_dir, c.work_dir, c.mountpoint}) fs::create_directories(d);
  return c;
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int value = 0;
  if (v == nullptr || *v == '\0') return fallback;
  auto [end, ec] = std::from_chars(v, v + std::strlen(v), value);
  return ec == std::errc() && *end == '\0' ? value : fallback;
}

void ForceUnmount(const fs::path& mnt) { umount2(mnt.c_str(), MNT_DETACH); }

Status UnmountWhenIdle(const fs::path& mnt) {
  for (int i = 0; i < 50; ++i) {
    if (umount2(mnt.c_str(), 0) == 0) return Status::Ok();
    if (errno != EBUSY) return Status::FromErrno("umount " + mnt.string());
    usleep(20000);
  }
  return Status::FromErrno("umount " + mnt.string());
}

namespace {

class PathMount : public TestMount {
 public:
  explicit PathMount(fs::path mnt) : mnt_(std::move(mnt)) {}
  ~PathMount() override {
    if (mounted_ && !Unmount().ok()) ForceUnmount(mnt_);
  }
  const fs::path& root() const override { return mnt_; }
  Status Unmount() override {
    if (!mounted_) return Status::Ok();
    mounted_ = false;
    return UnmountWhenIdle(mnt_);
  }

 private:
  fs::path mnt_;
  bool mounted_ = true;
};

std::string LowerList(const std::vector<fs::path>& lowers) {
  std::string list;
  for (auto it = lowers.rbegin(); it != lowers.rend(); ++it) list += (list.empty() ? "" : ":") + it->string();
  return list;
}

}  // namespace

Result<std::unique_ptr<TestMount>> MountKernelOverlay(const std::vector<fs::path>& lowers, const fs::path& upper,
                                                      const fs::path& work, const fs::path& mnt, bool index,
                                                      const std::string& redirect_dir, const MountFlags& flags) {
  // redirect_dir=on: renaming a lower dir works as in layerfs; index: copy-up keeps hard links.
  std::string opts = "lowerdir=" + LowerList(lowers) + ",upperdir=" + upper.string() + ",workdir=" +
                     work.string() + "," + redirect_dir + ",metacopy=off,index=" + (index ? "on" : "off");
  if (upper.empty()) opts = "lowerdir=" + LowerList(lowers);  // read-only: at least two lowers
  if (mount("overlay", mnt.c_str(), "overlay", flags.set, opts.c_str()) != 0)
    return Status::FromErrno("mount overlay at " + mnt.string());
  return std::unique_ptr<TestMount>(new PathMount(mnt));
}

Result<std::unique_ptr<TestMount>> MountFuseOverlayfs(const std::vector<fs::path>& lowers, const fs::path& upper,
                                                      const fs::path& work, const fs::path& mnt) {
  std::string opts = "lowerdir=" + LowerList(lowers) + ",upperdir=" + upper.string() + ",workdir=" + work.string();
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);  // it chats about ignored options
    execlp("fuse-overlayfs", "fuse-overlayfs", "-o", opts.c_str(), mnt.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::Error(EIO, "fuse-overlayfs failed at " + mnt.string());
  return std::unique_ptr<TestMount>(new PathMount(mnt));
}

namespace {

class LayerfsTestMount : public TestMount {
 public:
  LayerfsTestMount(std::unique_ptr<Mount> mount, fs::path mnt) : mount_(std::move(mount)), mnt_(std::move(mnt)) {}
  ~LayerfsTestMount() override {
    if (mount_ && !Unmount().ok()) ForceUnmount(mnt_);
  }
  const fs::path& root() const override { return mnt_; }
  Status Unmount() override {
    if (!mount_) return Status::Ok();
    Status st = mount_->Unmount();
    mount_.reset();
    return st;
  }

 private:
  std::unique_ptr<Mount> mount_;
  fs::path mnt_;
};

}  // namespace

Result<std::unique_ptr<TestMount>> MountLayerfs(const fs::path& store_root, const std::vector<Digest>& layers,
                                                const fs::path& upper, const fs::path& work, const fs::path& mnt,
                                                const MountFlags& flags) {
  MountConfig config;
  config.flags = flags;
  config.store_root = store_root;
  config.layers = layers;
  config.upper_dir = upper;
  config.work_dir = work;
  config.mountpoint = mnt;
  ASSIGN_OR_RETURN(auto mount, Mount::Start(config));
  return std::unique_ptr<TestMount>(new LayerfsTestMount(std::move(mount), mnt));
}

Result<std::unique_ptr<TestMount>> MountLayerfsOverlay(const std::vector<fs::path>& lowers, const fs::path& upper,
                                                       const fs::path& work, const fs::path& mnt,
                                                       const std::string& extra_options) {
  std::string opts = "lowerdir=" + LowerList(lowers);
  if (!upper.empty()) opts += ",upperdir=" + upper.string() + ",workdir=" + work.string();
  if (!extra_options.empty()) opts += "," + extra_options;
  ASSIGN_OR_RETURN(OverlayOptions parsed, ParseOverlayOptions(SplitOverlayOptions(opts), mnt.string()));
  ASSIGN_OR_RETURN(auto mount, Mount::Start(parsed.config));
  return std::unique_ptr<TestMount>(new LayerfsTestMount(std::move(mount), mnt));
}

// ---------------------------------------------------------------------------------------------
// Operations

namespace {

const char* KindName(OpKind k) {
  static const char* kNames[] = {"create", "write", "append", "truncate", "rename", "unlink",
                                 "mkdir", "rmdir", "link", "symlink", "chmod", "chown",
                                 "utimens", "setxattr", "removexattr", "mkfifo", "read", "readdir"};
  return kNames[static_cast<int>(k)];
}

std::string Quote(const std::string& p) { return "\"/" + p + "\""; }

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string RcResult(int rc) { return rc == 0 ? "ok" : ErrnoName(errno); }

std::string Hex(const std::string& bytes) { return Sha256Of(bytes).hex().substr(0, 16); }

// Every path of an op resolves inside the tree as if the tree were "/", as in a container: the
// ops' symlinks point at container paths ("/d0", "/etc/hostname", "/") and must never reach the
// host's files (openat2 RESOLVE_IN_ROOT). Both implementations see the same calls.
class InRoot {
 public:
  explicit InRoot(const fs::path& root) : root_fd_(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}
  ~InRoot() {
    if (root_fd_ >= 0) close(root_fd_);
  }
  InRoot(const InRoot&) = delete;
  InRoot& operator=(const InRoot&) = delete;

  // fd of rel (its symlinks followed within the tree), or -1 with errno.
  int Open(const std::string& rel, int flags, mode_t mode = 0) const {
    struct open_how how {};
    how.flags = flags | O_CLOEXEC;
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_IN_ROOT;
    // EAGAIN: a rename anywhere on the machine raced a ".." step (openat2(2): retry).
    int fd;
    do {
      fd = static_cast<int>(syscall(SYS_openat2, root_fd_, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
    } while (fd < 0 && errno == EAGAIN);
    return fd;
  }

  // For calls on a name itself (not following it): its directory, open, and the last component
  // ("." for the root). fd -1 with errno when the directory cannot be reached.
  struct Name {
    int dir_fd = -1;
    std::string name;
    ~Name() {
      if (dir_fd >= 0) close(dir_fd);
    }
    std::string path() const { return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name; }
  };
  std::unique_ptr<Name> NameOf(const std::string& rel) const {
    auto n = std::make_unique<Name>();
    size_t slash = rel.rfind('/');
    n->name = rel.empty() ? "." : slash == std::string::npos ? rel
                                                             : rel.substr(slash + 1);
    n->dir_fd = Open(slash == std::string::npos ? "" : rel.substr(0, slash), O_PATH | O_DIRECTORY);
    return n;
  }

 private:
  int root_fd_;
};

std::string WriteAll(const InRoot& root, const std::string& rel, int flags, mode_t mode, const Op& op, bool positional) {
  int fd = root.Open(rel, flags | O_NONBLOCK, mode);
  if (fd < 0) return ErrnoName(errno);
  std::string data = OpData(op);
  ssize_t n = positional ? pwrite(fd, data.data(), data.size(), op.offset) : write(fd, data.data(), data.size());
  std::string result = n == static_cast<ssize_t>(data.size()) ? "ok" : n < 0 ? ErrnoName(errno)
                                                                             : "short write";
  close(fd);
  return result;
}

std::string ReadAll(const InRoot& root, const std::string& rel) {
  int fd = root.Open(rel, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return ErrnoName(errno);
  std::string data;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, n);
  std::string result = n < 0 ? ErrnoName(errno) : "ok " + std::to_string(data.size()) + "B " + Hex(data);
  close(fd);
  return result;
}

std::string ListDir(const InRoot& root, const std::string& rel) {
  int fd = root.Open(rel, O_RDONLY | O_DIRECTORY);
  DIR* dir = fd < 0 ? nullptr : fdopendir(fd);
  if (!dir) return ErrnoName(errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) names.push_back(std::string(e->d_name) + ":" + std::to_string(e->d_type));
  closedir(dir);
  std::sort(names.begin(), names.end());
  std::string out = "ok";
  for (const auto& n : names) out += " " + n;
  return out;
}

// Calls that follow the final symlink (chmod, truncate) act on the inode reached in the tree.
template <class Call>
std::string OnResolved(const InRoot& root, const std::string& rel, Call call) {
  int fd = root.Open(rel, O_PATH);
  if (fd < 0) return ErrnoName(errno);
  std::string result = RcResult(call("/proc/self/fd/" + std::to_string(fd)));
  close(fd);
  return result;
}

}  // namespace

std::string OpData(const Op& op) {
  std::string s(op.length, '\0');
  uint64_t x = op.data_seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < s.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    s[i] = static_cast<char>('a' + x % 26);
  }
  return s;
}

std::string Describe(const Op& op) {
  char buf[64];
  std::string d = KindName(op.kind);
  switch (op.kind) {
    case OpKind::kCreate:
      snprintf(buf, sizeof(buf), " mode=%04o len=%llu", op.mode, (unsigned long long)op.length);
      return d + " " + Quote(op.a) + buf + (op.flags & O_EXCL ? " O_EXCL" : "") + (op.flags & O_TRUNC ? " O_TRUNC" : "");
    case OpKind::kWrite:
      return d + " " + Quote(op.a) + " offset=" + std::to_string(op.offset) + " len=" + std::to_string(op.length);
    case OpKind::kAppend: return d + " " + Quote(op.a) + " len=" + std::to_string(op.length);
    case OpKind::kTruncate: return d + " " + Quote(op.a) + " size=" + std::to_string(op.length);
    case OpKind::kRename:
      return d + " " + Quote(op.a) + " -> " + Quote(op.b) + (op.flags == RENAME_NOREPLACE ? " RENAME_NOREPLACE" : "") +
             (op.flags == RENAME_EXCHANGE ? " RENAME_EXCHANGE" : "");
    case OpKind::kLink: return d + " " + Quote(op.a) + " -> new " + Quote(op.b);
    case OpKind::kSymlink: return d + " " + Quote(op.a) + " target=\"" + op.value + "\"";
    case OpKind::kMkdir:
    case OpKind::kChmod:
    case OpKind::kMkfifo:
      snprintf(buf, sizeof(buf), " mode=%04o", op.mode);
      return d + " " + Quote(op.a) + buf;
    case OpKind::kChown: return d + " " + Quote(op.a) + " " + std::to_string(op.uid) + ":" + std::to_string(op.gid);
    case OpKind::kUtimens: return d + " " + Quote(op.a) + " t=" + std::to_string(op.offset);
    case OpKind::kSetxattr:
      return d + " " + Quote(op.a) + " " + op.name + "=" + op.value +
             (op.flags == XATTR_CREATE ? " XATTR_CREATE" : op.flags == XATTR_REPLACE ? " XATTR_REPLACE"
                                                                                     : "");
    case OpKind::kRemovexattr: return d + " " + Quote(op.a) + " " + op.name;
    default: return d + " " + Quote(op.a);
  }
}

std::string ApplyOp(const fs::path& tree, const Op& op) {
  InRoot root(tree);
  auto a = root.NameOf(op.a);
  if (a->dir_fd < 0 && op.kind != OpKind::kCreate && op.kind != OpKind::kWrite && op.kind != OpKind::kAppend &&
      op.kind != OpKind::kRead && op.kind != OpKind::kReaddir && op.kind != OpKind::kChmod && op.kind != OpKind::kTruncate)
    return ErrnoName(errno);
  const char* an = a->name.c_str();
  switch (op.kind) {
    case OpKind::kCreate: return WriteAll(root, op.a, O_CREAT | O_WRONLY | op.flags, op.mode, op, false);
    case OpKind::kWrite: return WriteAll(root, op.a, O_WRONLY, 0, op, true);
    case OpKind::kAppend: return WriteAll(root, op.a, O_WRONLY | O_APPEND, 0, op, false);
    case OpKind::kTruncate:
      return OnResolved(root, op.a, [&](const std::string& p) { return truncate(p.c_str(), op.length); });
    case OpKind::kRename: {
      auto b = root.NameOf(op.b);
      if (b->dir_fd < 0) return ErrnoName(errno);
      return RcResult(renameat2(a->dir_fd, an, b->dir_fd, b->name.c_str(), op.flags));
    }
    case OpKind::kUnlink: return RcResult(unlinkat(a->dir_fd, an, 0));
    case OpKind::kMkdir: return RcResult(mkdirat(a->dir_fd, an, op.mode));
    case OpKind::kRmdir: return RcResult(unlinkat(a->dir_fd, an, AT_REMOVEDIR));
    case OpKind::kLink: {
      auto b = root.NameOf(op.b);
      if (b->dir_fd < 0) return ErrnoName(errno);
      return RcResult(linkat(a->dir_fd, an, b->dir_fd, b->name.c_str(), 0));
    }
    case OpKind::kSymlink: return RcResult(symlinkat(op.value.c_str(), a->dir_fd, an));
    case OpKind::kChmod:
      return OnResolved(root, op.a, [&](const std::string& p) { return chmod(p.c_str(), op.mode); });
    case OpKind::kChown: return RcResult(fchownat(a->dir_fd, an, op.uid, op.gid, AT_SYMLINK_NOFOLLOW));
    case OpKind::kUtimens: {
      timespec t[2] = {{static_cast<time_t>(op.offset), 0}, {static_cast<time_t>(op.offset), 0}};
      return RcResult(utimensat(a->dir_fd, an, t, AT_SYMLINK_NOFOLLOW));
    }
    case OpKind::kSetxattr:
      return RcResult(lsetxattr(a->path().c_str(), op.name.c_str(), op.value.data(), op.value.size(), op.flags));
    case OpKind::kRemovexattr: return RcResult(lremovexattr(a->path().c_str(), op.name.c_str()));
    case OpKind::kMkfifo: return RcResult(mknodat(a->dir_fd, an, S_IFIFO | op.mode, 0));
    case OpKind::kRead: return ReadAll(root, op.a);
    case OpKind::kReaddir: return ListDir(root, op.a);
  }
  return "bad op";
}

SpecEntry FileEntry(const std::string& path, const std::string& content, uint32_t mode, uint32_t uid, uint32_t gid) {
  SpecEntry e;
  e.path = path;
  e.content = content;
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  return e;
}

SpecEntry DirEntry(const std::string& path, uint32_t mode, bool opaque) {
  SpecEntry e;
  e.path = path;
  e.type = EntryType::kDirectory;
  e.mode = mode;
  e.opaque = opaque;
  return e;
}

SpecEntry SymlinkEntry(const std::string& path, const std::string& target) {
  SpecEntry e;
  e.path = path;
  e.type = EntryType::kSymlink;
  e.target = target;
  e.mode = 0777;
  return e;
}

SpecEntry HardlinkEntry(const std::string& path, const std::string& to) {
  SpecEntry e;
  e.path = path;
  e.hardlink = to;
  return e;
}

SpecEntry WhiteoutEntry(const std::string& path) {
  SpecEntry e;
  e.path = path;
  e.type = EntryType::kWhiteout;
  return e;
}

std::vector<Op> RandomOps(uint64_t seed, int count, std::vector<std::string> pool) {
  Rng rng(seed ^ 0x5eed0f0f5ull);
  std::vector<std::string> dirs{""};
  for (const auto& p : pool)
    if (p.substr(p.rfind('/') + 1).rfind('d', 0) == 0) dirs.push_back(p);  // generator names dirs d<N>
  int fresh = 0;
  auto existing = [&] { return rng.Pick(pool); };
  auto fresh_name = [&] {
    std::string p = Child(rng.Pick(dirs), "n" + std::to_string(fresh++));
    pool.push_back(p);
    return p;
  };
  auto any = [&] { return rng.Chance(80) ? existing() : fresh_name(); };
  static const uint32_t kModes[] = {0644, 0755, 0600, 0444, 04755, 0700, 0640};
  static const uint32_t kOwners[] = {0, 1000, 33, 65534};
  std::vector<Op> ops;
  for (int i = 0; i < count; ++i) {
    Op op;
    op.kind = static_cast<OpKind>(rng.Below(static_cast<int>(OpKind::kReaddir) + 1));
    op.data_seed = static_cast<uint32_t>(rng.Below(1u << 30));
    op.mode = kModes[rng.Below(7)];
    switch (op.kind) {
      case OpKind::kCreate:
        op.a = any();
        op.length = rng.Chance(30) ? 0 : rng.Below(20000);
        op.flags = (rng.Chance(30) ? O_EXCL : 0) | (rng.Chance(40) ? O_TRUNC : 0);
        break;
      case OpKind::kWrite:
        op.a = existing();
        op.offset = rng.Chance(50) ? rng.Below(4096) : rng.Below(300000);
        op.length = 1 + rng.Below(40000);
        break;
      case OpKind::kAppend:
        op.a = existing();
        op.length = 1 + rng.Below(10000);
        break;
      case OpKind::kTruncate:
        op.a = existing();
        op.length = rng.Chance(30) ? 0 : rng.Below(300000);
        break;
      case OpKind::kRename: {
        op.a = existing();
        op.b = rng.Chance(50) ? existing() : fresh_name();
        unsigned k = rng.Below(4);
        op.flags = k == 2 ? RENAME_NOREPLACE : k == 3 ? RENAME_EXCHANGE
                                                      : 0;
        break;
      }
      case OpKind::kLink:
        op.a = existing();
        op.b = fresh_name();
        break;
      case OpKind::kMkdir: {
        op.a = fresh_name();
        dirs.push_back(op.a);
        break;
      }
      case OpKind::kSymlink:
        op.a = fresh_name();
        op.value = rng.Chance(50) ? "/" + existing() : "../" + existing();
        break;
      case OpKind::kChown:
        op.a = existing();
        op.uid = kOwners[rng.Below(4)];
        op.gid = kOwners[rng.Below(4)];
        break;
      case OpKind::kUtimens:
        op.a = existing();
        op.offset = 1000000000 + rng.Below(100000000);
        break;
      case OpKind::kSetxattr:
        op.a = existing();
        op.name = "user.k" + std::to_string(rng.Below(3));
        op.value = "w" + std::to_string(rng.Below(100));
        op.flags = rng.Chance(20) ? XATTR_CREATE : rng.Chance(20) ? XATTR_REPLACE
                                                                  : 0;
        break;
      case OpKind::kRemovexattr:
        op.a = existing();
        op.name = "user.k" + std::to_string(rng.Below(3));
        break;
      case OpKind::kMkfifo: op.a = fresh_name(); break;
      default: op.a = existing();
    }
    ops.push_back(op);
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Shrinking

std::vector<Op> ShrinkOps(std::vector<Op> ops, const std::function<bool(const std::vector<Op>&)>& fails) {
  size_t chunks = 2;
  while (ops.size() >= 2) {
    size_t size = (ops.size() + chunks - 1) / chunks;
    bool reduced = false;
    for (size_t start = 0; start < ops.size(); start += size) {
      std::vector<Op> complement(ops.begin(), ops.begin() + start);
      complement.insert(complement.end(), ops.begin() + std::min(ops.size(), start + size), ops.end());
      if (!complement.empty() && fails(complement)) {
        ops = std::move(complement);
        chunks = std::max<size_t>(chunks - 1, 2);
        reduced = true;
        break;
      }
    }
    if (reduced) continue;
    if (chunks >= ops.size()) break;
    chunks = std::min(ops.size(), chunks * 2);
  }
  return ops;
}

}  // namespace layerfs::fstest
