// RequestStats: how many FUSE requests of each kind a mount's daemon was handed, counted at
// dispatch (fuse_ops.cc) with one relaxed atomic add per request on a cache line of its own:
// no lock on the request path. Requests libfuse answers without calling the filesystem (INIT,
// INTERRUPT, ENOSYS for an operation it does not implement) are not counted.
//
// Readable without a debugger through the mount itself: getxattr of kXattr on the mount's root
// returns Text() (trusted.*: the kernel lets only CAP_SYS_ADMIN ask; `layerfs stats MNT`). That
// read is not counted, so reading twice around a workload gives exactly the workload's requests.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

class RequestStats {
 public:
  // FUSE opcodes the engine implements; names as the kernel's (fuse.h) without FUSE_.
  enum Op : uint8_t {
    kLookup,
    kForget,
    kBatchForget,
    kGetAttr,
    kSetAttr,
    kReadLink,
    kMkNod,
    kMkDir,
    kUnlink,
    kRmDir,
    kSymLink,
    kRename,
    kLink,
    kOpen,
    kRead,
    kWrite,
    kFlush,
    kRelease,
    kFSync,
    kOpenDir,
    kReadDir,
    kReadDirPlus,
    kReleaseDir,
    kFSyncDir,
    kStatFs,
    kSetXattr,
    kGetXattr,
    kListXattr,
    kRemoveXattr,
    kCreate,
    kFAllocate,
    kIoctl,
    kLSeek,
    kOpCount
  };
  static constexpr const char* kXattr = "trusted.layerfs.stats";

  void Add(Op op) { counts_[op].n.fetch_add(1, std::memory_order_relaxed); }
  uint64_t Count(Op op) const { return counts_[op].n.load(std::memory_order_relaxed); }
  static const char* Name(Op op);

  // "NAME COUNT\n" per opcode, every opcode, in Op order.
  std::string Text() const;
  // Text() back into (name, count) pairs; an error names the line it cannot read.
  static Result<std::vector<std::pair<std::string, uint64_t>>> Parse(std::string_view text);

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> n{0};
  };
  std::array<Slot, kOpCount> counts_;
};

}  // namespace layerfs
