// ioctl: the inode flags of chattr/lsattr (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS: immutable,
// append-only, nodump, noatime, ...) and their xfs-style form (FS_IOC_FSGETXATTR /
// FS_IOC_FSSETXATTR), as overlayfs has them: read from the real file (upper, else lower), set on
// the upper after a copy-up. The kernel has checked the caller (owner, CAP_LINUX_IMMUTABLE for
// immutable and append-only) before it sends them; the host filesystem then enforces the flags
// on every later change the daemon makes (EPERM on a write to an immutable file).
// Every other ioctl is ENOTTY, as on overlayfs.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

bool IsFlagsGet(unsigned cmd) { return cmd == FS_IOC_GETFLAGS || cmd == FS_IOC_FSGETXATTR; }
bool IsFlagsSet(unsigned cmd) { return cmd == FS_IOC_SETFLAGS || cmd == FS_IOC_FSSETXATTR; }

// The argument's size: FS_IOC_*FLAGS carry an int (whatever their encoded size says), the
// xattr forms a struct fsxattr.
size_t ArgSize(unsigned cmd) { return cmd == FS_IOC_GETFLAGS || cmd == FS_IOC_SETFLAGS ? sizeof(int) : sizeof(fsxattr); }

}  // namespace

// An fd for the ioctl of node's real file (upper, else lower); fi is not used: the kernel sends
// these for directories without an open handle too. -errno on failure.
int LayerFs::OpenForFlags(Node* node) {
  if (node->upper.load(std::memory_order_acquire)) {
    int fd = OpenatNoAtime(AT_FDCWD, RefOf(node).path().c_str(), O_RDONLY | O_NONBLOCK | O_NOATIME | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }
  return OpenLower(node->lower, O_NONBLOCK);
}

void LayerFs::Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  if (!IsFlagsGet(cmd) && !IsFlagsSet(cmd)) return (void)fuse_reply_err(req, ENOTTY);
  size_t size = ArgSize(cmd);
  std::shared_ptr<Node> node = Shared(ino);
  if (IsFlagsSet(cmd)) {
    if (in_bufsz < size) return (void)fuse_reply_err(req, EINVAL);
    if (int r = EnsureUpper(node); r != 0) return (void)fuse_reply_err(req, -r);
  } else if (out_bufsz < size) {
    return (void)fuse_reply_err(req, EINVAL);
  }
  int fd = OpenForFlags(node.get());
  if (fd < 0) return (void)fuse_reply_err(req, -fd);
  alignas(fsxattr) char arg[sizeof(fsxattr)] = {};
  if (IsFlagsSet(cmd)) std::memcpy(arg, in_buf, size);
  int r = ::ioctl(fd, cmd, arg);
  int err = r < 0 ? errno : 0;
  ::close(fd);
  if (err != 0) return (void)fuse_reply_err(req, err);
  if (IsFlagsSet(cmd)) {
    Invalidate(node.get(), false);  // ctime moved
    return (void)fuse_reply_ioctl(req, 0, nullptr, 0);
  }
  fuse_reply_ioctl(req, 0, arg, size);
}

}  // namespace layerfs
