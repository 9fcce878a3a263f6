#include "fs/mount/mount.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "fs/index/dir_layer.h"
#include "fs/index/overlay_index_cache.h"
#include "fs/mount/fuse_mount.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/store.h"

namespace layerfs {

namespace {

bool IsMountPoint(const std::filesystem::path& dir) {
  struct stat self, parent;
  if (::stat(dir.c_str(), &self) != 0 || ::stat((dir / "..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

bool IsEmptyDir(const std::filesystem::path& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") empty = false;
  }
  ::closedir(d);
  return empty;
}

// Mount options. As root the mount serves every user with kernel permission checks, and setuid
// binaries and device nodes work as on overlayfs (suid, dev) unless nosuid / nodev say otherwise.
std::string FuseOptions(const MountConfig& c) {
  std::string o = "fsname=" + c.fsname + ",subtype=" + c.subtype;
  if (c.default_permissions) o += ",default_permissions";
  if (c.allow_other || ::geteuid() == 0) o += ",allow_other";
  for (const std::string& flag : c.flags.FuseOptions(::geteuid() == 0)) o += "," + flag;
  if (c.upper_dir.empty() && !(c.flags.set & MS_RDONLY)) o += ",ro";
  for (const std::string& extra : c.fuse_options) o += "," + extra;
  return o;
}

// Rootless mounts go through fusermount3, which passes only the flags libfuse knows.
Status CheckFlagsReachKernel(const MountConfig& c) {
  if (::geteuid() == 0 || c.flags.KernelOnly() == 0) return Status::Ok();
  return Status::Error(EPERM, "option " + c.flags.KernelOnlyName() +
                                  " needs root: fusermount3 (rootless mounts) cannot pass it to the kernel");
}

// strictatime, nodiratime, lazytime: libfuse 3.14 cannot pass them, so root sets them with a
// remount of the fresh mount (every other flag restated: a remount sets all of them).
Status SetKernelOnlyFlags(const MountConfig& c, const std::string& mountpoint) {
  if (c.flags.KernelOnly() == 0) return Status::Ok();
  unsigned long flags = MS_REMOUNT | c.flags.RemountFlags() | (c.upper_dir.empty() ? MS_RDONLY : 0);
  if (::mount(nullptr, mountpoint.c_str(), nullptr, flags, nullptr) != 0)
    return Status::FromErrno("remount " + mountpoint + " with " + c.flags.KernelOnlyName());
  return Status::Ok();
}

// Whether dir lies on an idmapped mount (the kernel lists "idmapped" among the mount's own
// options in mountinfo): the deepest mount point that contains it decides.
bool OnIdmappedMount(const std::filesystem::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, best_point;
  bool best_idmapped = false;
  const std::string path = dir.string() + "/";
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point, options;
    if (!(fields >> id >> parent >> devno >> root >> point >> options)) continue;
    std::string prefix = point == "/" ? "/" : point + "/";
    if (path.compare(0, prefix.size(), prefix) != 0 || point.size() < best_point.size()) continue;
    best_point = point;
    best_idmapped = ("," + options + ",").find(",idmapped,") != std::string::npos;
  }
  return best_idmapped;
}

// podman 4.3 as root, for a --uidmap container, hands the mount program lowers it has already
// idmapped (containers/storage's overlay/<id>/mapped/N, fixed in later releases) together with
// uidmapping=/gidmapping=: such a lower shows host ids, which would be mapped a second time
// (every file 65534). Its ids are taken back to the image's (container) ids through the same
// mapping, so it reads like any other lower.
DirLayer::EntryFix UnmapIdmappedLowers(const MountConfig& c, const std::vector<std::filesystem::path>& lowers) {
  if (c.owners.uids.empty() && c.owners.gids.empty()) return {};
  std::vector<bool> idmapped(lowers.size());
  for (size_t i = 0; i < lowers.size(); ++i) idmapped[i] = OnIdmappedMount(lowers[i]);
  if (std::find(idmapped.begin(), idmapped.end(), true) == idmapped.end()) return {};
  return [idmapped, uids = c.owners.uids, gids = c.owners.gids](size_t layer, LayerEntry* e) {
    if (!idmapped[layer]) return;
    e->uid = uids.Stored(e->uid);
    e->gid = gids.Stored(e->gid);
  };
}

// A lower that is <store>/layers/<diff_id>/tree (canonical): its diff_id.
std::optional<Digest> StoreLayerOf(const Store& store, const std::filesystem::path& lower) {
  std::error_code ec;
  if (lower.filename() != "tree" || lower.parent_path().parent_path() != std::filesystem::canonical(store.layers_dir(), ec))
    return std::nullopt;
  auto d = Digest::Parse("sha256:" + lower.parent_path().filename().string());
  if (!d.ok()) return std::nullopt;
  return *d;
}

// Lowers among which some are layers of the store at c.store_root: a stack of store layers only
// maps the store's chain index (shared with `layerfs mount`); a mixed one reads the store
// layers' indexes and walks the rest.
Result<MergedIndex> StoreLowerIndex(const MountConfig& c, const std::vector<std::filesystem::path>& lowers,
                                    const DirLayer::EntryFix& fix) {
  if (!std::filesystem::exists(c.store_root / "oci-layout"))
    return Status::Error(EINVAL, "store=" + c.store_root.string() + " is not a layerfs store");
  ASSIGN_OR_RETURN(Store store, Store::Open(c.store_root));
  std::vector<Digest> diff_ids;
  for (const auto& dir : lowers)
    if (auto d = StoreLayerOf(store, dir)) diff_ids.push_back(*d);
  if (diff_ids.size() == lowers.size() && !fix) return MergedIndex::LoadOrBuild(store, diff_ids);
  DirLayer::LowerReader reader = [store](const std::filesystem::path& dir) -> Result<LayerIndex> {
    if (auto d = StoreLayerOf(store, dir)) return LayerStore(store).ReadIndex(*d);
    return DirLayer::Walk(dir);
  };
  if (c.index_cache.empty() || fix) return DirLayer::BuildMerged(lowers, fix, reader);
  return OverlayIndexCache(c.index_cache).LoadOrBuild(lowers, nullptr, reader);
}

// A chain with lazy layers: merged in memory from their indexes (built from the TOCs) and the
// store's indexes of the others; not cached, since the chain is in the store only once complete.
Result<MergedIndex> LazyLowerIndex(const Store& store, const MountConfig& c, std::vector<std::string>* layer_dirs) {
  std::vector<LayerIndex> read(c.layers.size());
  std::vector<const LayerIndex*> indexes;
  for (uint32_t i = 0; i < c.layers.size(); ++i) {
    if (c.lazy->IsLazy(i)) {
      indexes.push_back(&c.lazy->Index(i));
      layer_dirs->push_back(c.lazy->TreeDir(i));
      continue;
    }
    ASSIGN_OR_RETURN(read[i], LayerStore(store).ReadIndex(c.layers[i]));
    indexes.push_back(&read[i]);
    layer_dirs->push_back(store.layer_tree(c.layers[i]).string());
  }
  return MergedIndex::Build(indexes, ChainId(c.layers));
}

// The merged index and the lower trees of a mount: store layers (cached merged index) or
// plain directories (cached by their roots' identity, or walked now).
Result<MergedIndex> LowerIndex(const MountConfig& c, std::vector<std::string>* layer_dirs) {
  if (!c.lower_dirs.empty()) {
    // Resolved once: containers/storage passes its l/<id> symlinks (often relative to its cwd).
    std::vector<std::filesystem::path> resolved;
    for (const auto& d : c.lower_dirs) {
      std::error_code ec;
      resolved.push_back(std::filesystem::canonical(d, ec));
      if (ec) return Status::Error(ec.value(), "lower dir " + d.string() + ": " + ec.message());
      layer_dirs->push_back(resolved.back().string());
    }
    DirLayer::EntryFix fix = UnmapIdmappedLowers(c, resolved);
    if (!c.store_root.empty()) return StoreLowerIndex(c, resolved, fix);
    // A fix makes the index depend on the mount's id mapping, not on the lowers alone.
    if (c.index_cache.empty() || fix) return DirLayer::BuildMerged(resolved, fix);
    return OverlayIndexCache(c.index_cache).LoadOrBuild(resolved);
  }
  ASSIGN_OR_RETURN(Store store, Store::Open(c.store_root));
  if (c.lazy) return LazyLowerIndex(store, c, layer_dirs);
  for (const Digest& d : c.layers) layer_dirs->push_back(store.layer_tree(d).string());
  return MergedIndex::LoadOrBuild(store, c.layers);
}

// libfuse opens /dev/fuse itself, also for a user who then mounts through fusermount3.
Status CheckFuseDevice() {
  if (::access("/dev/fuse", F_OK) != 0)
    return Status::Error(ENODEV, "/dev/fuse is missing (is the fuse module loaded?)");
  if (::access("/dev/fuse", R_OK | W_OK) != 0)
    return Status::Error(EACCES, "/dev/fuse is not readable and writable by this user (Debian's fuse3 makes it mode 0666)");
  return Status::Ok();
}

}  // namespace

Status CheckMountpoint(const std::filesystem::path& dir) {
  RETURN_IF_ERROR(CheckFuseDevice());
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOTCONN) return Status::Error(EBUSY, dir.string() + ": a dead mount is still there (run layerfs umount)");
    return Status::FromErrno(dir.string());
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, dir.string() + ": not a directory");
  if (IsMountPoint(dir)) return Status::Error(EBUSY, dir.string() + ": already a mount point");
  if (!IsEmptyDir(dir)) return Status::Error(ENOTEMPTY, dir.string() + ": directory is not empty");
  return Status::Ok();
}

Result<std::unique_ptr<Mount>> Mount::Start(const MountConfig& config) {
  auto m = FuseMount::Create(config);
  if (!m.ok()) return m.status();
  return std::unique_ptr<Mount>(std::move(m).value());
}

Result<std::unique_ptr<FuseMount>> FuseMount::Create(const MountConfig& config, std::function<void()> on_exit) {
  std::unique_ptr<FuseMount> m(new FuseMount());
  m->on_exit_ = std::move(on_exit);
  RETURN_IF_ERROR(m->Serve(config));
  return m;
}

Status FuseMount::Serve(const MountConfig& config) {
  RETURN_IF_ERROR(CheckMountpoint(config.mountpoint));
  RETURN_IF_ERROR(CheckFlagsReachKernel(config));
  LayerFsOptions options;
  ASSIGN_OR_RETURN(MergedIndex index, LowerIndex(config, &options.layer_dirs));
  options.rename_copies_subtree = config.rename_copies_subtree;
  options.owners = config.owners;
  options.static_nlink = config.static_nlink;
  options.sync_upper = config.sync_upper;
  options.no_open = config.no_open;
  options.xattr_permissions = config.xattr_permissions;
  // FUSE_CAP_POSIX_ACL turns the kernel's permission checks on: not behind no_default_permissions.
  options.posix_acl = config.posix_acl && config.default_permissions;
  options.noatime = config.flags.noatime();
  options.nodiratime = config.flags.nodiratime();
  options.dirsync = config.flags.set & (MS_DIRSYNC | MS_SYNCHRONOUS);
  options.upper_dir = config.upper_dir.string();
  options.work_dir = config.work_dir.string();
  options.lazy = config.lazy;
  if (!config.record_reads.empty()) {
    ASSIGN_OR_RETURN(options.record_reads, ReadRecorder::Create(config.record_reads));
  }
  ASSIGN_OR_RETURN(fs_, LayerFs::Create(std::move(index), options));

  TransportChoice choice = ChooseTransport(config.io_uring);
  std::string opts = FuseOptions(config);
  if (choice.transport == Transport::kIoUring) opts += ",io_uring";
  std::vector<const char*> argv = {"layerfs", "-o", opts.c_str()};
  if (config.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  se_ = fuse_session_new(&args, &LayerFs::Operations(), sizeof(fuse_lowlevel_ops), fs_.get());
  fuse_opt_free_args(&args);  // option parsing may have copied argv
  if (se_ == nullptr) return Status::Error(EINVAL, "cannot create FUSE session (options: " + opts + ")");
  fs_->set_session(se_);
  mountpoint_ = std::filesystem::absolute(config.mountpoint).string();
  if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status::Error(EIO, "cannot mount FUSE at " + mountpoint_);
  }
  mounted_ = true;
  threads_ = config.threads;
  int rings_before = CountIoUringFds();
  loop_ = std::thread([this] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    if (threads_ > 0) fuse_loop_cfg_set_max_threads(cfg, threads_);
    fuse_session_loop_mt(se_, cfg);
    fuse_loop_cfg_destroy(cfg);
    session_ended_ = true;
    if (on_exit_) on_exit_();
  });
  // The first stat blocks until the kernel's INIT has been answered: then the mount answers.
  struct stat st;
  if (::stat(mountpoint_.c_str(), &st) != 0) {
    Status err = Status::FromErrno("mount at " + mountpoint_ + " does not answer");
    UnmountLazy();
    return err;
  }
  if (Status flags = SetKernelOnlyFlags(config, mountpoint_); !flags.ok()) {
    UnmountLazy();
    return flags;
  }
  // INIT has been answered, and libfuse starts its rings before it answers.
  transport_why_ = choice.why;
  if (choice.transport == Transport::kIoUring) {
    if (CountIoUringFds() > rings_before) transport_ = Transport::kIoUring;
    else
      transport_why_ = "libfuse could not start its io_uring queues (its log line says why)";
  }
  return Status::Ok();
}

Status FuseMount::Unmount() {
  if (!mounted_) return Status::Ok();
  if (::geteuid() == 0) {
    if (::umount2(mountpoint_.c_str(), 0) != 0 && errno != EINVAL)
      return Status::FromErrno("unmount " + mountpoint_);
  } else {
    fuse_session_unmount(se_);
  }
  Join();
  return Status::Ok();
}

bool DeadMountAt(const std::filesystem::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) != 0 && errno == ENOTCONN;
}

// After the session ended on its own the path may already hold someone else's mount: containerd
// unmounts a helper mount whose exit status its shim lost (ECHILD) and mounts again at the same
// target, and a detach by path would take the new mount away. Only a dead FUSE mount left at the
// path (ENOTCONN: ours, aborted) is detached then.
void FuseMount::UnmountLazy() {
  if (!mounted_) return;
  fuse_session_exit(se_);
  if (::geteuid() == 0) {
    // Only once the session has ended: a stat of our own live mount from here could wait on
    // workers that are stopping.
    if (!session_ended_ || DeadMountAt(mountpoint_)) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  } else
    fuse_session_unmount(se_);
  Join();
}

void FuseMount::Join() {
  if (loop_.joinable()) loop_.join();
  // Frees libfuse's copy of the mount point; the connection is gone, so it unmounts nothing.
  fuse_session_unmount(se_);
  fuse_session_destroy(se_);
  se_ = nullptr;
  mounted_ = false;
}

FuseMount::~FuseMount() { UnmountLazy(); }

}  // namespace layerfs
