// Test harness for the mount: random lower layers (from a seed), materialised both as overlay
// lower dirs (kernel overlayfs / fuse-overlayfs) and as OCI tar layers in a temp store (layerfs);
// mounts of each kind behind one interface; random operation sequences applied to a mount
// with their results recorded; delta-debugging shrink of a failing sequence.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fs/mount/mount.h"
#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/store.h"

namespace layerfs::fstest {

// A fresh directory under /tmp, removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "layerfs-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One entry of a layer as an image author writes it.
struct SpecEntry {
  std::string path;                      // relative, parents listed before children
  EntryType type = EntryType::kRegular;  // kWhiteout: deletes `path` from the layers below
  uint32_t mode = 0644;                  // permission bits
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 1300000000;
  std::string content;                                      // regular files
  std::string target;                                       // symlinks
  std::string hardlink;                                     // non-empty: a hard link to this earlier regular entry of the layer
  bool opaque = false;                                      // directories: hide the layers below
  std::vector<std::pair<std::string, std::string>> xattrs;  // user.* (files and dirs only)
};
using LayerSpec = std::vector<SpecEntry>;

// Builders for hand-written layer specs.
SpecEntry FileEntry(const std::string& path, const std::string& content, uint32_t mode = 0644, uint32_t uid = 0,
                    uint32_t gid = 0);
SpecEntry DirEntry(const std::string& path, uint32_t mode = 0755, bool opaque = false);
SpecEntry SymlinkEntry(const std::string& path, const std::string& target);
SpecEntry HardlinkEntry(const std::string& path, const std::string& to);  // to: an earlier file of the layer
SpecEntry WhiteoutEntry(const std::string& path);

// 1..4 layers, bottom first, with dirs, files, symlinks, hard links, fifos, xattrs, and in upper
// layers whiteouts, opaque dirs and type changes. Same seed, same layers.
std::vector<LayerSpec> RandomLayers(uint64_t seed);
// Every path any layer mentions (whiteouts included) plus "": a pool for random operations.
std::vector<std::string> PathsOf(const std::vector<LayerSpec>& layers);

// Overlay format: whiteout = char device 0/0, opaque = trusted.overlay.opaque "y".
Status WriteOverlayLower(const LayerSpec& layer, const std::filesystem::path& dir);
// OCI format: uncompressed tar with .wh.NAME and .wh..wh..opq markers.
Result<std::string> BuildLayerTar(const LayerSpec& layer);
// Puts the tar into the store's blobs and unpacks it (LayerStore::Ensure); returns its diff_id.
Result<Digest> AddLayer(const Store& store, const std::string& tar);

// A mounted union filesystem under test.
class TestMount {
 public:
  virtual ~TestMount() = default;
  virtual const std::filesystem::path& root() const = 0;
  virtual Status Unmount() = 0;
};

// lowers: bottom first. Each mount point must exist and be empty.
// upper empty: a read-only mount of the lowers (two at least). index: overlayfs keeps lower hard links across copy-up (layerfs does too); off: it breaks them.
// redirect_dir: on (renaming a lower dir works as in layerfs), or e.g. nofollow.
Result<std::unique_ptr<TestMount>> MountKernelOverlay(const std::vector<std::filesystem::path>& lowers,
                                                      const std::filesystem::path& upper,
                                                      const std::filesystem::path& work,
                                                      const std::filesystem::path& mnt, bool index = true,
                                                      const std::string& redirect_dir = "redirect_dir=on",
                                                      const MountFlags& flags = {});
Result<std::unique_ptr<TestMount>> MountFuseOverlayfs(const std::vector<std::filesystem::path>& lowers,
                                                      const std::filesystem::path& upper,
                                                      const std::filesystem::path& work,
                                                      const std::filesystem::path& mnt);
Result<std::unique_ptr<TestMount>> MountLayerfs(const std::filesystem::path& store_root,
                                                const std::vector<Digest>& layers,
                                                const std::filesystem::path& upper,
                                                const std::filesystem::path& work,
                                                const std::filesystem::path& mnt, const MountFlags& flags = {});
// `layerfs overlay` in this process: the options go through ParseOverlayOptions as the
// command's do ("lowerdir=TOP:...:BOTTOM,upperdir=,workdir=" built from lowers, bottom first,
// plus `extra_options`); upper empty: read-only.
Result<std::unique_ptr<TestMount>> MountLayerfsOverlay(const std::vector<std::filesystem::path>& lowers,
                                                       const std::filesystem::path& upper,
                                                       const std::filesystem::path& work,
                                                       const std::filesystem::path& mnt,
                                                       const std::string& extra_options = "");
// A container's mount of `layers` from the store at store_root with dir/upper, dir/work and
// dir/mnt (created), as `layerfs mount` configures one; for fixtures that mount in-process.
MountConfig ContainerMountConfig(const std::filesystem::path& store_root, const std::vector<Digest>& layers,
                                 const std::filesystem::path& dir);
// The integer in environment variable `name` (seed counts and sizes a run may raise), else fallback.
int EnvInt(const char* name, int fallback);
// Last resort for fixtures: lazy unmount of whatever is mounted at mnt (ignores errors).
void ForceUnmount(const std::filesystem::path& mnt);
// umount(2) that waits out EBUSY for up to a second: the kernel drops the last references of a
// just-closed file (or of a FUSE connection torn down on top of this mount) asynchronously.
Status UnmountWhenIdle(const std::filesystem::path& mnt);

enum class OpKind {
  kCreate,
  kWrite,
  kAppend,
  kTruncate,
  kRename,
  kUnlink,
  kMkdir,
  kRmdir,
  kLink,
  kSymlink,
  kChmod,
  kChown,
  kUtimens,
  kSetxattr,
  kRemovexattr,
  kMkfifo,
  kRead,
  kReaddir,
};

struct Op {
  OpKind kind = OpKind::kRead;
  std::string a, b;  // paths relative to the mount root (b: rename/link target, symlink path)
  uint64_t offset = 0, length = 0;
  uint32_t mode = 0644, uid = 0, gid = 0;
  unsigned flags = 0;       // create: O_EXCL/O_TRUNC; rename: RENAME_NOREPLACE/RENAME_EXCHANGE
  std::string name, value;  // xattrs
  uint32_t data_seed = 0;   // write data is a function of (data_seed, offset)
};

std::string Describe(const Op& op);
// Runs op under root; returns "ok", "ok <detail>" (reads: hash / listing) or the errno name.
std::string ApplyOp(const std::filesystem::path& root, const Op& op);
// count ops over paths from the pool (which grows with the names the ops create).
std::vector<Op> RandomOps(uint64_t seed, int count, std::vector<std::string> pool);
// The deterministic bytes an op writes.
std::string OpData(const Op& op);

// Delta debugging (ddmin): the smallest subsequence (1-minimal) for which fails() still holds.
std::vector<Op> ShrinkOps(std::vector<Op> ops, const std::function<bool(const std::vector<Op>&)>& fails);

}  // namespace layerfs::fstest
