// Snapshotter: containerd's snapshot service on the layerfs store, without gRPC (tools/ holds
// the thin gRPC translation; tests drive this class directly). Each snapshot is a directory
// <dir>/<id>/{fs,work} in overlayfs's upper format (docs/upper-format.md); its record lives in
// the SnapshotCatalog <dir>/metadata.json. The mounts it returns are descriptions containerd
// performs itself:
//   - a container's (active) snapshot: type "fuse3.layerfs-overlay", which containerd mounts
//     through mount.fuse3 -> `layerfs-overlay`: the parents' fs dirs as lowers, its own fs as
//     upper. The mount lives and dies with the container; the snapshotter holds no mounts.
//   - a view: the same without upper (read-only).
//   - an unpack snapshot (key "extract-..."): type "overlay" with upperdir, which containerd's
//     applier never mounts: it writes the layer tar straight into the upper dir, whiteouts and
//     opaque dirs in overlayfs's form, as for its own overlayfs snapshotter.
// Errors are errno codes (ENOENT, EEXIST, EBUSY = failed precondition, EINVAL). Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "layerstore/base/status.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/snapshots/snapshot_catalog.h"

namespace layerfs {

struct SnapshotMount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

struct SnapshotUsage {
  int64_t size = 0;    // allocated bytes of the snapshot's own files (st_blocks * 512)
  int64_t inodes = 0;  // its own inodes, each hard-link group once
};

class Snapshotter {
 public:
  // Opens (creating) `dir`, takes its lock (EBUSY when another snapshotter holds it) and
  // sweeps what a crash left (Cleanup).
  static Result<std::unique_ptr<Snapshotter>> Open(const std::filesystem::path& dir);

  using Labels = std::map<std::string, std::string>;
  Result<std::vector<SnapshotMount>> Prepare(const std::string& key, const std::string& parent, const Labels& labels);
  Result<std::vector<SnapshotMount>> View(const std::string& key, const std::string& parent, const Labels& labels);
  Result<std::vector<SnapshotMount>> Mounts(const std::string& key);
  Status Commit(const std::string& name, const std::string& key, const Labels& labels);
  Status Remove(const std::string& key);
  Result<SnapshotInfo> Stat(const std::string& key);
  Result<SnapshotInfo> Update(const SnapshotInfo& info, const std::vector<std::string>& paths);
  // Infos matching containerd filters (SnapshotFilter), in name order.
  Result<std::vector<SnapshotInfo>> List(const std::vector<std::string>& filters);
  Result<SnapshotUsage> Usage(const std::string& key);
  // Removes snapshot directories no record names and staging files of dead processes.
  Status Cleanup();

  std::filesystem::path SnapshotDir(uint64_t id) const { return dir_ / std::to_string(id); }

 private:
  Snapshotter(std::filesystem::path dir, UniqueFd lock, SnapshotCatalog catalog)
      : dir_(std::move(dir)), lock_(std::move(lock)), catalog_(std::move(catalog)) {}
  Result<std::vector<SnapshotMount>> Create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                            const Labels& labels);
  Result<std::vector<SnapshotMount>> MountsOf(const SnapshotRecord& r) const;
  Status CleanupLocked();

  std::filesystem::path dir_;
  UniqueFd lock_;
  std::mutex mu_;
  SnapshotCatalog catalog_;
};

}  // namespace layerfs
