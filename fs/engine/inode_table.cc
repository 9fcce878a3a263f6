#include "fs/engine/inode_table.h"

#include <unistd.h>

namespace layerfs {

Node::~Node() {
  for (int fd : {dir_fd.load(), file_fd.load()})
    if (fd >= 0) ::close(fd);
}

std::pair<std::shared_ptr<Node>, std::string> Node::Location() {
  std::lock_guard lock(mu);
  return {parent, name};
}

void Node::SetLocation(std::shared_ptr<Node> new_parent, std::string new_name) {
  std::lock_guard lock(mu);
  parent = std::move(new_parent);
  name = std::move(new_name);
}

// The by-key accessor serialises this with Acquire of the same key, so a Node is never
// revived after its count reached zero.
void InodeTable::Forget(Node* node, uint64_t n) {
  ByKey::accessor acc;
  bool keyed = by_key_.find(acc, node->key) && acc->second == node;
  if (node->nlookup.fetch_sub(n, std::memory_order_relaxed) != n) return;
  if (keyed) by_key_.erase(acc);
  owners_.erase(node);
}

void InodeTable::Detach(Node* node) {
  ByKey::accessor acc;
  if (by_key_.find(acc, node->key) && acc->second == node) by_key_.erase(acc);
}

}  // namespace layerfs
