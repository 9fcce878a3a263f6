// Mount: one layerfs union filesystem = the layers of a chain (read-only, from the store, served
// from the merged index) + one writable upper directory, exposed at a mount point via FUSE.
// The lowers may instead be plain directories in overlay's format (`layerfs overlay`).
// The mount knows nothing of images or tags: callers resolve an image to its diff_ids.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/engine/id_map.h"
#include "fs/engine/lazy_lowers.h"
#include "fs/mount/mount_flags.h"
#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct MountConfig {
  std::filesystem::path store_root;
  std::vector<Digest> layers;  // diff_ids, bottom first; all present in the store
  // or lazy: the layers lazy->IsLazy names come from it (index, tree, data on demand)
  std::shared_ptr<LazyLowers> lazy;
  // RunMountDaemon calls it once the mount answers (mount --lazy: starts the background fetch).
  std::function<void()> after_mount;
  std::filesystem::path upper_dir;  // empty together with work_dir: read-only mount
  std::filesystem::path work_dir;   // same filesystem as upper_dir
  std::filesystem::path mountpoint;
  std::string fsname = "layerfs";
  bool allow_other = false;         // default true when the mounting process is root
  bool default_permissions = true;  // kernel permission checks against the merged attributes
  unsigned threads = 0;             // FUSE worker threads; 0 = libfuse default
  bool debug = false;
  // `layerfs overlay`: plain lower directories (bottom first) instead of store_root/layers,
  // and overlay's behaviour. Their merged index is walked at every mount, or kept in
  // index_cache (OverlayIndexCache: keyed by each lower's root) when that is set. With
  // store_root set too, a lower that is a layer tree of that store (the containerd
  // snapshotter's store layers) is read from the layer's index, and a stack of store layers
  // only maps the store's chain index, as `layerfs mount` does.
  std::vector<std::filesystem::path> lower_dirs;
  std::filesystem::path index_cache;
  std::string subtype = "layerfs";
  MountFlags flags;                       // mount(8)'s generic options: ro, nosuid, noatime, ...
  std::vector<std::string> fuse_options;  // more options for libfuse (allow_root, SELinux labels)
  bool rename_copies_subtree = false;     // LayerFsOptions
  OwnerPolicy owners;
  bool static_nlink = false;
  bool sync_upper = true;     // LayerFsOptions
  int xattr_permissions = 0;  // LayerFsOptions (fuse-overlayfs's force_mask support)
  bool posix_acl = true;      // LayerFsOptions (`noacl`: off)
  bool io_uring = true;       // FUSE over io_uring where offered (fs/mount/fuse_transport.h)
  bool no_open = false;       // LayerFsOptions
  // With sync_upper off: a file that exists while the upper may hold writes not yet on disk
  // (RunMountDaemon); empty: none (layerfs overlay, as fuse-overlayfs).
  std::filesystem::path volatile_marker;
  // Non-empty: the image files opened are written there, first open first (read_recorder.h).
  std::filesystem::path record_reads;
};

class Mount {
 public:
  // Mounts and serves on background threads; returns once the mount answers.
  static Result<std::unique_ptr<Mount>> Start(const MountConfig& config);
  virtual ~Mount() = default;  // unmounts if still mounted
  // Unmounts (lazily if busy is not allowed: returns EBUSY) and joins the workers.
  virtual Status Unmount() = 0;
};

// Serves in the calling thread until unmounted or SIGTERM/SIGINT (then unmounts cleanly).
// ready_fd >= 0: one byte is written to it (and it is closed) once the mount answers, or the
// error line if mounting failed, so a parent can daemonise and report. Used by `layerfs mount`.
// A volatile_marker is made (durably) before mounting and removed only after a clean end has
// synced the upper's filesystem, like overlayfs's work/incompat/volatile: after a crash it stays.
Status RunMountDaemon(const MountConfig& config, int ready_fd);

// Forks a daemon (new session, stdio to log_file) that runs RunMountDaemon; returns its pid
// once the mount answers, or the daemon's one-line error. after_exit runs in the daemon once
// it has unmounted (e.g. to clear a container record).
Result<int> SpawnMountDaemon(const MountConfig& config, const std::filesystem::path& log_file,
                             const std::function<void()>& after_exit = {});

// Unmounts dir (umount2 as root, fusermount3 -u otherwise) and waits up to 10 s for
// daemon_pid (if > 0) to exit. A stale mount (daemon dead: ENOTCONN) is detached lazily.
// A busy mount: EBUSY, unless lazy (then detached).
Status UnmountMountpoint(const std::filesystem::path& dir, int daemon_pid, bool lazy = false);

}  // namespace layerfs
