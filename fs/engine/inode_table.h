// Node and InodeTable: the FUSE inodes the kernel currently knows, passthrough_hp style.
//
// A Node's FUSE nodeid is its address. Nodes are keyed so the same file always maps to the same
// Node: lower entries (also once copied up, via their origin) by merged-index node number,
// upper-only entries by the upper file's inode number. The kernel's lookup count is explicit:
// Acquire() on every entry reply, Forget() drops it and erases the Node at zero (the object
// lives on while a child or an open request still holds a shared_ptr to it).
// The table is a TBB concurrent_hash_map: lookups never take a global lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <tbb/concurrent_hash_map.h>

namespace layerfs {

inline constexpr uint32_t kNoLower = 0xffffffffu;

struct Node : std::enable_shared_from_this<Node> {
  uint64_t key = 0;
  bool is_dir = false;
  // Merged-index node: attributes/data while not copied up; for directories, the source of
  // lower children (kNoLower when the directory is opaque or upper-only). Set at creation;
  // a directory drops its lower source once its upper copy holds it all (ops_rename.cc).
  std::atomic<uint32_t> lower{kNoLower};
  std::atomic<uint64_t> nlookup{0};

  // Guards copy-up (exactly once), parent/name and dir_fd.
  std::mutex mu;
  std::atomic<bool> upper{false};  // exists in the upper directory
  std::atomic<int> dir_fd{-1};     // directories with an upper: O_RDONLY fd of it
  // Non-directories with an upper: O_PATH fd of the upper inode, so attributes, opens and
  // xattrs reach the file whatever happens to the name it was found under (hard links).
  std::atomic<int> file_fd{-1};
  std::shared_ptr<Node> parent;  // where this node was last seen (null for the root)
  std::string name;

  // FUSE passthrough (fs/engine/passthrough.h), guarded by backing_mu: the backing id the kernel
  // knows this file's data by (0: none), whether that is the upper copy, and how many opens
  // are bound to a backing file of this inode (the kernel keeps it while any is).
  std::mutex backing_mu;
  int backing_id = 0;
  bool backing_upper = false;
  uint32_t backing_opens = 0;

  ~Node();
  // parent + name, read consistently.
  std::pair<std::shared_ptr<Node>, std::string> Location();
  void SetLocation(std::shared_ptr<Node> new_parent, std::string new_name);
};

class InodeTable {
 public:
  static constexpr uint64_t kUpperKeyBit = uint64_t{1} << 63;
  static uint64_t LowerKey(uint32_t node) { return uint64_t{node} + 1; }
  static uint64_t UpperKey(uint64_t host_ino) { return host_ino | kUpperKeyBit; }

  // The Node for key, made by make() if absent or if the one there fails fits() (an upper
  // inode number reused by a new file); its lookup count is incremented by one.
  template <class Make, class Fits>
  std::shared_ptr<Node> Acquire(uint64_t key, Make&& make, Fits&& fits) {
    ByKey::accessor acc;
    if (!by_key_.insert(acc, key) && acc->second && fits(*acc->second)) {
      acc->second->nlookup.fetch_add(1, std::memory_order_relaxed);
      return acc->second->shared_from_this();
    }
    std::shared_ptr<Node> node = make();
    node->key = key;
    node->nlookup.store(1, std::memory_order_relaxed);
    owners_.insert({node.get(), node});
    acc->second = node.get();
    return node;
  }
  // Drops n kernel references; at zero the Node leaves the table.
  void Forget(Node* node, uint64_t n);
  // The entry is gone from the namespace: its key may be reused by a new file; the Node
  // itself lives until the kernel forgets it.
  void Detach(Node* node);
  size_t size() const { return owners_.size(); }

 private:
  using ByKey = tbb::concurrent_hash_map<uint64_t, Node*>;
  using Owners = tbb::concurrent_hash_map<Node*, std::shared_ptr<Node>>;
  ByKey by_key_;
  Owners owners_;
};

}  // namespace layerfs
