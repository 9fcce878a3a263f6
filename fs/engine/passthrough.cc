#include "fs/engine/passthrough.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "fs/engine/file_handle.h"
#include "fs/engine/host_admin.h"
#include "fs/engine/inode_table.h"

namespace layerfs {

namespace {

#if LAYERFS_HAVE_PASSTHROUGH
bool TurnedOff() {
  const char* v = std::getenv("LAYERFS_PASSTHROUGH");
  return v != nullptr && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
}
#endif

}  // namespace

// FUSE_BACKING_STACKED_UNDER: layer and upper files live on ext4/xfs (depth 0), and the mount
// itself counts as one stacking level, so kernel overlayfs (FILESYSTEM_MAX_STACK_DEPTH 2) can
// still use it as a lower or upper layer. Stores on overlayfs get ELOOP at registration and
// fall back. Writeback caching excludes passthrough; layerfs never asks for it (Init).
void Passthrough::Negotiate(fuse_conn_info* conn) {
#if LAYERFS_HAVE_PASSTHROUGH
  // Backing files register only with CAP_SYS_ADMIN in the initial user namespace
  // (FUSE_DEV_IOC_BACKING_OPEN); asking without it would only fail later.
  if (!(conn->capable & FUSE_CAP_PASSTHROUGH) || TurnedOff() || !HasHostAdmin()) return;
  conn->want |= FUSE_CAP_PASSTHROUGH;
  conn->max_backing_stack_depth = FUSE_BACKING_STACKED_UNDER;
  enabled_.store(true, std::memory_order_relaxed);
#endif
}

bool Passthrough::Attach(fuse_req_t req, Node* node, FileHandle* h, fuse_file_info* fi) {
#if LAYERFS_HAVE_PASSTHROUGH
  std::lock_guard lock(node->backing_mu);
  bool upper = node->upper.load(std::memory_order_acquire);
  bool held = node->backing_opens > 0;
  // The kernel wants every open of an inode bound to the one backing file it holds.
  if (held && node->backing_upper != upper) return false;
  if (node->backing_id > 0 && node->backing_upper != upper) {
    // Copied up since the layer file was registered: its id goes before the upper file's comes.
    fuse_passthrough_close(req, node->backing_id);
    node->backing_id = 0;
  }
  if (node->backing_id == 0 && enabled()) {
    if (h->lower && upper) return false;  // opened the layer file just before a copy-up
    int id = fuse_passthrough_open(req, h->fd);
    if (id > 0) {
      node->backing_id = id;
      node->backing_upper = upper;
      registered_.fetch_add(1, std::memory_order_relaxed);
    } else {
      Disable(errno);
    }
  }
  if (node->backing_id == 0) return true;  // the daemon serves this open (passthrough is off)
  fi->backing_id = node->backing_id;
  fi->keep_cache = 0;  // the kernel refuses page-cache flags beside passthrough
  ++node->backing_opens;
  h->passthrough = true;
#endif
  return true;
}

bool Passthrough::HoldsLayerFile(Node* node) {
  std::lock_guard lock(node->backing_mu);
  return node->backing_opens > 0 && !node->backing_upper;
}

void Passthrough::Detach(fuse_req_t req, Node* node, FileHandle* h) {
#if LAYERFS_HAVE_PASSTHROUGH
  if (!h->passthrough) return;
  std::lock_guard lock(node->backing_mu);
  h->passthrough = false;
  if (--node->backing_opens == 0 && node->backing_id > 0) {
    fuse_passthrough_close(req, node->backing_id);
    node->backing_id = 0;
  }
#endif
}

void Passthrough::Disable(int err) {
  if (enabled_.exchange(false))
    std::fprintf(stderr,
                 "layerfs: FUSE passthrough off for this mount: cannot register a backing file (%s); "
                 "reads go through the daemon\n",
                 std::strerror(err));
}

}  // namespace layerfs
