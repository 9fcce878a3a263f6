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
// A layer the store already holds (pulled or loaded by layerfs) is never unpacked again: a
// Prepare that carries containerd's target label (`containerd.io/snapshot.ref` = the layer's
// chain ID, as its unpacker sends it) for a chain of a store image commits a snapshot that *is*
// the store layer and answers AlreadyExists, as containerd's remote snapshotters do; mounts
// above it name layers/<diff_id>/tree as a lower with `store=` so layerfs-overlay reads its
// index. Such layers are held (LayerHolds) while a snapshot names them.
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
#include "layerstore/store/store.h"

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
  // The label containerd's unpacker puts on a layer's Prepare: the chain ID it will commit.
  static constexpr const char* kTargetLabel = "containerd.io/snapshot.ref";

  // Opens (creating) the store's snapshots/ dir, takes its lock (EBUSY when another
  // snapshotter holds it) and sweeps what a crash left (Cleanup).
  static Result<std::unique_ptr<Snapshotter>> Open(const Store& store);

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
  // Removes snapshot directories no record names and staging files of dead processes, and
  // holds exactly the store layers the records name.
  Status Cleanup();

  std::filesystem::path SnapshotDir(uint64_t id) const { return dir_ / std::to_string(id); }

 private:
  Snapshotter(Store store, UniqueFd lock, SnapshotCatalog catalog)
      : store_(std::move(store)), dir_(store_.root() / "snapshots"), lock_(std::move(lock)), catalog_(std::move(catalog)) {}
  Result<std::vector<SnapshotMount>> Create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                            const Labels& labels);
  // True when `key` was answered with the store layer of chain `target` (a new record or one
  // made before for the same chain and parent).
  Result<bool> AdoptStoreLayer(const std::string& key, const std::string& parent, const Labels& labels);
  Result<std::vector<SnapshotMount>> MountsOf(const SnapshotRecord& r) const;
  std::filesystem::path FilesOf(const SnapshotRecord& r) const;
  Status HoldStoreLayers() const;
  Status CleanupLocked();

  Store store_;
  std::filesystem::path dir_;
  UniqueFd lock_;
  std::mutex mu_;
  SnapshotCatalog catalog_;
};

}  // namespace layerfs
