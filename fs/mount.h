// Mount: one layerfs union filesystem = the layers of a chain (read-only, from the store, served
// from the merged index) + one writable upper directory, exposed at a mount point via FUSE.
// The mount knows nothing of images or tags: callers resolve an image to its diff_ids.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "layerstore/digest.h"
#include "layerstore/status.h"

namespace layerfs {

struct MountConfig {
  std::filesystem::path store_root;
  std::vector<Digest> layers;  // diff_ids, bottom first; all present in the store
  std::filesystem::path upper_dir;  // empty together with work_dir: read-only mount
  std::filesystem::path work_dir;   // same filesystem as upper_dir
  std::filesystem::path mountpoint;
  std::string fsname = "layerfs";
  bool allow_other = false;        // default true when the mounting process is root
  bool default_permissions = true; // kernel permission checks against the merged attributes
  unsigned threads = 0;            // FUSE worker threads; 0 = libfuse default
  bool debug = false;
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
Status RunMountDaemon(const MountConfig& config, int ready_fd);

}  // namespace layerfs
