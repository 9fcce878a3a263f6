// Passthrough: the FUSE passthrough side of one mount's data path (docs/passthrough.md).
//
// With libfuse >= 3.17 (LAYERFS_HAVE_PASSTHROUGH), a kernel that offers FUSE_CAP_PASSTHROUGH
// and CAP_SYS_ADMIN in the initial user namespace, an open regular file is bound to a backing
// file and the kernel reads and writes it directly: no READ/WRITE request reaches the daemon.
// Each inode has at most one backing id (the layer file, or the upper file once copied up),
// shared by the inode's opens and closed at the last release. The kernel binds one backing
// file per inode and cannot rebind an open file: opens from before a copy-up keep reading the
// layer file, and the copied-up name becomes a new inode for every open after it (ops_file.cc).
// The first failure to register a backing file turns passthrough off for the mount (one log
// line); the daemon then serves reads itself (the fallback path of ops_file.cc).
// LAYERFS_PASSTHROUGH=off in the environment turns it off before INIT.
#pragma once

#include <atomic>
#include <cstdint>

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

namespace layerfs {

struct Node;
struct FileHandle;

class Passthrough {
 public:
  // INIT: requests passthrough where possible; backing files must sit on a plain filesystem
  // (stack depth 0), so that overlayfs can still be mounted on top of the mount.
  void Negotiate(fuse_conn_info* conn);
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // open/create, before the reply: binds h (which holds `fd`, the data the open should see)
  // to node's backing file (fi->backing_id). false: this inode cannot take the open (it is
  // still bound to the layer file it was copied up from); the caller makes the name a new
  // inode and answers ESTALE, which the VFS retries once after a fresh lookup.
  bool Attach(fuse_req_t req, Node* node, FileHandle* h, fuse_file_info* fi);
  // Opens from before a copy-up still read node's layer file through the kernel.
  bool HoldsLayerFile(Node* node);
  // release (or a failed open reply): drops h's share of node's backing id.
  void Detach(fuse_req_t req, Node* node, FileHandle* h);

  // READ requests the daemon served: 0 after reading passthrough files.
  void CountRead() { reads_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t daemon_reads() const { return reads_.load(std::memory_order_relaxed); }
  uint64_t backing_opens() const { return registered_.load(std::memory_order_relaxed); }

 private:
  void Disable(int err);

  std::atomic<bool> enabled_{false};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> registered_{0};
};

}  // namespace layerfs
