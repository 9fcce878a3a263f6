// Extended attributes. Lower entries answer from the merged index; changes copy up first.
// The store's private xattrs (UpperFormat::IsPrivateXattr) are invisible and cannot be set.
// Upper calls go through /proc/self/fd/N of the node's fd: the magic link leads to the inode
// itself, also for a symlink (what l*xattr would do).
#include <sys/xattr.h>

#include <cstring>

#include "fs/engine/layer_fs.h"
#include "fs/engine/posix_acl.h"

namespace layerfs {

namespace {

void ReplySized(fuse_req_t req, const char* data, size_t len, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, len);
  if (len > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, data, len);
}

}  // namespace

int LayerFs::ReadXattr(Node* node, const char* name, std::string* value) {
  if (!node->upper.load(std::memory_order_acquire)) {
    for (const auto& [k, v] : index_.Xattrs(node->lower))
      if (k == name) {
        *value = v;
        return 0;
      }
    return -ENODATA;
  }
  std::string path = RefOf(node).path();
  ssize_t n = ::getxattr(path.c_str(), name, nullptr, 0);
  if (n < 0) return -errno;
  value->resize(static_cast<size_t>(n));
  n = ::getxattr(path.c_str(), name, value->data(), value->size());
  if (n < 0) return -errno;
  value->resize(static_cast<size_t>(n));
  return 0;
}

// The kernel (setattr_should_drop_sgid, overlayfs's set_acl) drops S_ISGID when an access ACL
// is set by someone outside the file's group without CAP_FSETID; the host setxattr ran as
// root, which keeps it. A caller other than uid 0 counts as without CAP_FSETID.
void LayerFs::DropSetgidAfterAcl(fuse_req_t req, Node* node) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct stat st;
  if (ctx->uid == 0 || Attr(node, &st) != 0 || !(st.st_mode & S_ISGID) || S_ISDIR(st.st_mode)) return;
  bool in_group = ctx->gid == st.st_gid;
  gid_t groups[256];
  int n = in_group ? 0 : fuse_req_getgroups(req, 256, groups);
  for (int i = 0; i < n && i < 256; ++i) in_group = in_group || groups[i] == st.st_gid;
  if (!in_group) ::chmod(RefOf(node).path().c_str(), st.st_mode & 07777 & ~S_ISGID);
}

void LayerFs::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (IsStatsRead(ino, name)) {  // a private name: no container can have set it
    std::string text = stats_.Text();
    return ReplySized(req, text.data(), text.size(), size);
  }
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
  if (r == 0 && posix_acl_ && std::strcmp(name, kAclAccessXattr) == 0) DropSetgidAfterAcl(req, node.get());
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
