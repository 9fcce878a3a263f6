// Extended attributes. Lower entries answer from the merged index; changes copy up first.
// The store's private xattrs (UpperFormat::IsPrivateXattr) are invisible and cannot be set.
// Upper calls go through /proc/self/fd/N of the node's fd: the magic link leads to the inode
// itself, also for a symlink (what l*xattr would do).
#include <sys/xattr.h>

#include <cstring>

#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

void ReplySized(fuse_req_t req, const char* data, size_t len, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, len);
  if (len > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, data, len);
}

}  // namespace

void LayerFs::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (UpperFormat::IsPrivateXattr(name)) return (void)fuse_reply_err(req, ENODATA);
  Node* node = ToNode(ino);
  if (!node->upper.load(std::memory_order_acquire)) {
    for (const auto& [k, v] : index_.Xattrs(node->lower))
      if (k == name) return ReplySized(req, v.data(), v.size(), size);
    return (void)fuse_reply_err(req, ENODATA);
  }
  UpperRef ref = RefOf(node);
  std::vector<char> buf(size > 0 ? size : 65536);
  ssize_t n = ::getxattr(ref.path().c_str(), name, buf.data(), buf.size());
  if (n < 0) return (void)fuse_reply_err(req, errno);
  ReplySized(req, buf.data(), static_cast<size_t>(n), size);
}

void LayerFs::ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Node* node = ToNode(ino);
  std::string out;
  if (!node->upper.load(std::memory_order_acquire)) {
    for (const auto& [k, v] : index_.Xattrs(node->lower)) {
      out += k;
      out += '\0';
    }
    return ReplySized(req, out.data(), out.size(), size);
  }
  UpperRef ref = RefOf(node);
  std::vector<char> buf(65536);
  ssize_t n = ::listxattr(ref.path().c_str(), buf.data(), buf.size());
  if (n < 0) return (void)fuse_reply_err(req, errno);
  for (ssize_t p = 0; p < n;) {
    std::string key(buf.data() + p);
    p += static_cast<ssize_t>(key.size()) + 1;
    if (UpperFormat::IsPrivateXattr(key)) continue;
    out += key;
    out += '\0';
  }
  ReplySized(req, out.data(), out.size(), size);
}

void LayerFs::SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  if (UpperFormat::IsPrivateXattr(name)) return (void)fuse_reply_err(req, EPERM);
  std::shared_ptr<Node> node = Shared(ino);
  if (int r = EnsureUpper(node); r != 0) return (void)fuse_reply_err(req, -r);
  UpperRef ref = RefOf(node.get());
  int r = ::setxattr(ref.path().c_str(), name, value, size, flags);
  if (r == 0) Invalidate(node.get(), false);  // a POSIX ACL also changes the mode
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void LayerFs::RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (UpperFormat::IsPrivateXattr(name)) return (void)fuse_reply_err(req, ENODATA);
  std::shared_ptr<Node> node = Shared(ino);
  if (!node->upper.load(std::memory_order_acquire)) {
    // Nothing to remove: no copy-up (overlayfs checks the lower first too).
    bool has = false;
    for (const auto& [k, v] : index_.Xattrs(node->lower)) has = has || k == name;
    if (!has) return (void)fuse_reply_err(req, ENODATA);
  }
  if (int r = EnsureUpper(node); r != 0) return (void)fuse_reply_err(req, -r);
  UpperRef ref = RefOf(node.get());
  int r = ::removexattr(ref.path().c_str(), name);
  if (r == 0) Invalidate(node.get(), false);  // a POSIX ACL also changes the mode
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

}  // namespace layerfs
