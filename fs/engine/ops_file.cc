// File operations: create, open, read, write, flush, release, fsync, fallocate, lseek.
// Opens bind the file to a FUSE passthrough backing file where the mount has passthrough
// (fs/engine/passthrough.h): the kernel then reads and writes it without the daemon. Otherwise reads
// go through ReadFd and Read below (the fallback path). Writes always hit the upper copy: open
// for write copies up first.
#include <fcntl.h>
#include <unistd.h>

#include <memory>

#include "fs/engine/file_handle.h"
#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

FileHandle* Handle(fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }

// libfuse copies a reply of fewer than two pages through a buffer it allocates per request;
// such reads (random 4 KiB) use this thread's own buffer instead.
const size_t kSmallRead = 2 * static_cast<size_t>(::sysconf(_SC_PAGESIZE));

void ReadIntoThreadBuffer(fuse_req_t req, int fd, size_t size, off_t off) {
  thread_local std::unique_ptr<char[]> buf(new char[kSmallRead]);
  ssize_t n = ::pread(fd, buf.get(), size, off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, buf.get(), static_cast<size_t>(n));
}

bool WantsWrite(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

}  // namespace

int LayerFs::OpenUpper(Node* node, int flags) {
  // O_NOFOLLOW would refuse the /proc magic link itself; the kernel already resolved the name.
  int fd = ::open(RefOf(node).path().c_str(), (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

// keep_cache: lower files never change, so their pages stay cached across opens (and are
// shared by every container using the layer). Upper files drop the cache on open: a copy-up
// may have replaced what the kernel cached under this inode.
void LayerFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::shared_ptr<Node> node = Shared(ino);
  if (WantsWrite(fi->flags)) {
    if (int r = EnsureUpper(node); r != 0) return (void)fuse_reply_err(req, -r);
  }
  auto h = std::make_unique<FileHandle>();
  if (node->upper.load(std::memory_order_acquire)) {
    h->fd = OpenUpper(node.get(), fi->flags);
  } else {
    h->fd = OpenLower(node->lower, fi->flags);
    h->lower = true;
    fi->keep_cache = 1;
  }
  if (h->fd < 0) return (void)fuse_reply_err(req, -h->fd);
  if (!passthrough_.Attach(req, node.get(), h.get(), fi)) return RetryOnNewInode(req, node);
  fi->fh = reinterpret_cast<uint64_t>(handles_.Adopt(std::move(h)));
  if (fuse_reply_open(req, fi) != 0) Close(req, node.get(), Handle(fi));
}

// The kernel keeps this inode bound to the layer file while opens from before its copy-up
// live (fs/engine/passthrough.h), so the name moves to a new inode: the Node leaves the table (it
// lives on for those opens), the kernel drops the name, and ESTALE makes the VFS look the
// name up again and retry the open once, which then lands on the upper file.
void LayerFs::RetryOnNewInode(fuse_req_t req, const std::shared_ptr<Node>& node) {
  if (passthrough_.HoldsLayerFile(node.get())) {
    table_.Detach(node.get());
    auto [parent, name] = node->Location();
    fuse_ino_t dir = parent == root_ || !parent ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(parent.get());
    if (session_ != nullptr) fuse_lowlevel_notify_inval_entry(session_, dir, name.c_str(), name.size());
  }
  fuse_reply_err(req, ESTALE);
}

void LayerFs::Close(fuse_req_t req, Node* node, FileHandle* h) {
  passthrough_.Detach(req, node, h);
  handles_.Release(h);
}

void LayerFs::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  std::shared_ptr<Node> node;
  auto make = [&](int dirfd, const std::string& n) {
    return ::mknodat(dirfd, n.c_str(), S_IFREG | 0600, 0) == 0 ? 0 : -errno;
  };
  int r = NewEntry(req, Shared(parent), name, S_IFREG | (mode & 07777), make, &node);
  if (r != 0) return (void)fuse_reply_err(req, -r);
  auto h = std::make_unique<FileHandle>();
  h->fd = OpenUpper(node.get(), fi->flags & ~O_TRUNC);
  fuse_entry_param e{};
  if (h->fd < 0 || Attr(node.get(), &e.attr, h->fd) != 0) {
    table_.Forget(node.get(), 1);
    return (void)fuse_reply_err(req, h->fd < 0 ? -h->fd : EIO);
  }
  Show(&e.attr);
  e.ino = reinterpret_cast<fuse_ino_t>(node.get());
  e.attr_timeout = Timeout(node.get());
  e.entry_timeout = EntryTimeout(node.get());
  passthrough_.Attach(req, node.get(), h.get(), fi);  // a new file: nothing holds it yet
  fi->fh = reinterpret_cast<uint64_t>(handles_.Adopt(std::move(h)));
  if (fuse_reply_create(req, &e, fi) != 0) {
    Close(req, node.get(), Handle(fi));
    table_.Forget(node.get(), 1);
  }
}

// The fd a read should use: a lower handle switches to the upper copy once one exists.
int LayerFs::ReadFd(Node* node, FileHandle* h) {
  if (!h->lower) return h->fd;
  int u = h->upper_fd.load(std::memory_order_acquire);
  if (u >= 0) return u;
  if (!node->upper.load(std::memory_order_acquire)) return h->fd;
  int fd = OpenUpper(node, O_RDONLY);
  if (fd < 0) return h->fd;
  int expected = -1;
  if (!h->upper_fd.compare_exchange_strong(expected, fd)) {
    ::close(fd);
    return expected;
  }
  return fd;
}

// The fallback path (no passthrough). A large read's reply is a file descriptor + offset:
// libfuse splices the data from the page cache into /dev/fuse through its per-thread pipe (one
// copy, no user buffer, no allocation per request).
void LayerFs::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  passthrough_.CountRead();
  int fd = ReadFd(ToNode(ino), Handle(fi));
  if (size < kSmallRead) return ReadIntoThreadBuffer(req, fd, size, off);
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void LayerFs::WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = Handle(fi)->fd;
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  fuse_reply_write(req, static_cast<size_t>(n));
}

// close(dup(fd)) reports delayed write errors (NFS-style) at close(2), as a local file would.
void LayerFs::Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd = ::dup(Handle(fi)->fd);
  int r = fd < 0 ? errno : (::close(fd) == 0 ? 0 : errno);
  fuse_reply_err(req, r);
}

void LayerFs::Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Close(req, ToNode(ino), Handle(fi));
  fuse_reply_err(req, 0);
}

void LayerFs::FSync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  if (!options_.sync_upper) return (void)fuse_reply_err(req, 0);
  int fd = Handle(fi)->fd;
  int r = datasync ? ::fdatasync(fd) : ::fsync(fd);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

// A directory's entries change only in its upper copy; a lower-only directory has nothing to sync.
void LayerFs::FSyncDir(fuse_req_t req, fuse_ino_t ino, int datasync) {
  int fd = ToNode(ino)->dir_fd.load(std::memory_order_acquire);
  if (!options_.sync_upper || fd < 0) return (void)fuse_reply_err(req, 0);
  int r = datasync ? ::fdatasync(fd) : ::fsync(fd);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void LayerFs::FAllocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  int r = ::fallocate(Handle(fi)->fd, mode, offset, length);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void LayerFs::LSeek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  off_t r = ::lseek(ReadFd(ToNode(ino), Handle(fi)), off, whence);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

}  // namespace layerfs
