// File operations: create, open, read, write, flush, release, fsync, fallocate, lseek.
// Opens bind the file to a FUSE passthrough backing file where the mount has passthrough
// (fs/engine/passthrough.h): the kernel then reads and writes it without the daemon. Otherwise reads
// go through ReadFd and Read below (the fallback path). Writes always hit the upper copy: open
// for write copies up first.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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

// --- O_DIRECT (FileHandle::direct_fd). The kernel sends a request of an O_DIRECT file straight
// to the daemon (FUSE's direct_IO), and says so in the request's flags. The daemon does that
// I/O on an O_DIRECT fd of the backing file through a page-aligned buffer, so the backing
// filesystem itself accepts or refuses the request's offset and length (ext4: EINVAL unless
// aligned to its logical block size), as it would under kernel overlayfs. Buffered requests
// never touch any of this.

// fd reopened with O_DIRECT (same access mode, O_APPEND and O_NOATIME), kept in slot for the
// handle's life; -errno (EINVAL where the backing filesystem has no O_DIRECT, as its open says).
int DirectFd(std::atomic<int>& slot, int fd) {
  int cached = slot.load(std::memory_order_acquire);
  if (cached >= 0) return cached;
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  int flags = (fl & (O_ACCMODE | O_APPEND | O_NOATIME)) | O_DIRECT | O_CLOEXEC;
  int dfd = ::open(UpperFormat::FdPath(fd, "").c_str(), flags);
  if (dfd < 0) return -errno;
  if (!slot.compare_exchange_strong(cached, dfd)) {
    ::close(dfd);
    return cached;
  }
  return dfd;
}

// This thread's page-aligned buffer of at least `size` bytes (O_DIRECT wants aligned memory;
// a page covers every logical block size); nullptr if out of memory.
char* AlignedBuffer(size_t size) {
  struct Buffer {
    void* data = nullptr;
    size_t capacity = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buf;
  if (size <= buf.capacity) return static_cast<char*>(buf.data);
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t capacity = (size + page - 1) / page * page;
  void* data = nullptr;
  if (::posix_memalign(&data, page, capacity) != 0) return nullptr;
  std::free(buf.data);
  buf.data = data;
  buf.capacity = capacity;
  return static_cast<char*>(data);
}

void ReadDirect(fuse_req_t req, std::atomic<int>& slot, int fd, size_t size, off_t off) {
  int dfd = DirectFd(slot, fd);
  if (dfd < 0) return (void)fuse_reply_err(req, -dfd);
  char* buf = AlignedBuffer(size);
  if (buf == nullptr) return (void)fuse_reply_err(req, ENOMEM);
  ssize_t n = ::pread(dfd, buf, size, off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, buf, static_cast<size_t>(n));
}

// The request's data is copied once into the aligned buffer (it arrives at an arbitrary
// offset of libfuse's request buffer, which O_DIRECT would refuse).
void WriteDirect(fuse_req_t req, FileHandle* h, fuse_bufvec* in, off_t off) {
  int dfd = DirectFd(h->direct_fd, h->fd);
  if (dfd < 0) return (void)fuse_reply_err(req, -dfd);
  size_t size = fuse_buf_size(in);
  char* buf = AlignedBuffer(size);
  if (buf == nullptr) return (void)fuse_reply_err(req, ENOMEM);
  fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
  mem.buf[0].mem = buf;
  ssize_t copied = fuse_buf_copy(&mem, in, static_cast<fuse_buf_copy_flags>(0));
  if (copied < 0) return (void)fuse_reply_err(req, static_cast<int>(-copied));
  ssize_t n = ::pwrite(dfd, buf, static_cast<size_t>(copied), off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, static_cast<size_t>(n));
}

}  // namespace

int LayerFs::OpenUpper(Node* node, int flags) {
  // O_NOFOLLOW would refuse the /proc magic link itself; the kernel already resolved the name.
  flags = (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC;
  if (options_.noatime) flags |= O_NOATIME;  // reads (and exec) keep the atime, as on overlayfs
  int fd = OpenatNoAtime(AT_FDCWD, RefOf(node).path().c_str(), flags);
  return fd >= 0 ? fd : -errno;
}

// keep_cache: lower files never change, so their pages stay cached across opens (and are
// shared by every container using the layer). Upper files drop the cache on open: a copy-up
// may have replaced what the kernel cached under this inode.
//
// Every open costs an OPEN (and an asynchronous RELEASE) unless the mount has no_open: the
// kernel's no-open mode (FUSE_CAP_NO_OPEN_SUPPORT, an ENOSYS from open) is per connection, so
// it also drops the OPEN of upper files and of opens for write: no copy-up at open as overlayfs
// does (a file opened for write and closed unwritten stays lower), reads and writes arriving
// without a handle (FileOf), keep_cache forced on upper files, and no passthrough, which binds
// its backing file in the OPEN reply. So it is a choice (LayerFsOptions::no_open), not the
// default. Measured: OPEN and RELEASE are the two requests per warm read of a lower file
// (bench/RESULTS.md).
void LayerFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (options_.no_open) {
    open_refused_.store(true, std::memory_order_release);
    return (void)fuse_reply_err(req, ENOSYS);  // the kernel stops sending OPEN
  }
  std::shared_ptr<Node> node = Shared(ino);
  RecordOpen(node.get());
  if (WantsWrite(fi->flags)) {
    if (int r = EnsureUpper(node); r != 0) return (void)fuse_reply_err(req, -r);
  }
  auto h = std::make_unique<FileHandle>();
  // A lazy layer's file (also once copied up: its lower opens are not passthrough) is read by
  // the daemon, which fetches what is missing first.
  bool lazy = FromLazyLayer(node->lower.load(std::memory_order_acquire));
  if (int r = OpenBacking(node.get(), h.get(), fi, lazy); r != 0) return (void)fuse_reply_err(req, -r);
  if (int r = OpenDirect(h.get(), fi); r != 0) return (void)fuse_reply_err(req, -r);
  fi->noflush = !FlushReports(fi->flags);
  if (!lazy && !passthrough_.Attach(req, node.get(), h.get(), fi)) return RetryOnNewInode(req, node);
  fi->fh = reinterpret_cast<uint64_t>(handles_.Adopt(std::move(h)));
  if (fuse_reply_open(req, fi) != 0) Close(req, node.get(), Handle(fi));
}

// The handle's backing fd. A lower file the daemon reads is opened at its first READ
// (LowerFd) instead: a warm read is served from the page cache and sends none, so such an open
// costs the daemon no openat(2) and its release no close(2). Passthrough binds the file in the
// OPEN reply, and an O_DIRECT open asks the backing filesystem now, so both open at once. The
// cost: a lower file that vanished from the host's layer directory fails its first read instead
// of its open. 0 / -errno.
int LayerFs::OpenBacking(Node* node, FileHandle* h, fuse_file_info* fi, bool lazy) {
  int flags = fi->flags & ~O_DIRECT;  // O_DIRECT requests use h->direct_fd
  if (node->upper.load(std::memory_order_acquire)) {
    h->fd = OpenUpper(node, flags);
  } else {
    h->lower = true;
    h->lower_idx = node->lower.load(std::memory_order_acquire);
    fi->keep_cache = 1;
    bool now = (fi->flags & O_DIRECT) != 0 || (passthrough_.enabled() && !lazy);
    if (!now) return 0;
    h->fd = OpenLower(h->lower_idx, flags);
  }
  return std::min(h->fd.load(), 0);
}

// no_open (LayerFsOptions): the kernel answered the first OPEN's ENOSYS by opening files itself
// from then on, with fi->fh 0 and no RELEASE, so each READ, WRITE, FSYNC, FALLOCATE and LSEEK
// opens what it needs for itself and closes it with its reply. A write copies the file up
// first, where an open for writing would have.
LayerFs::RequestFile LayerFs::FileOf(fuse_ino_t ino, fuse_file_info* fi, bool write) {
  RequestFile file;
  if (fi->fh != 0) {
    file.h = Handle(fi);
    return file;
  }
  std::shared_ptr<Node> node = Shared(ino);
  if (write && (file.err = EnsureUpper(node)) != 0) return file;
  auto h = std::make_unique<FileHandle>();
  if (node->upper.load(std::memory_order_acquire)) {
    h->fd = OpenUpper(node.get(), write ? O_WRONLY : O_RDONLY);
    if ((file.err = std::min(h->fd.load(), 0)) != 0) return file;
  } else {
    h->lower = true;
    h->lower_idx = node->lower.load(std::memory_order_acquire);
  }
  file.own = std::move(h);
  file.h = file.own.get();
  return file;
}

// The lower fd of a handle whose open was deferred (OpenBacking), opened once: fd / -errno.
int LayerFs::LowerFd(FileHandle* h) {
  int fd = h->fd.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  fd = OpenLower(h->lower_idx, O_RDONLY);
  if (fd < 0) return fd;
  int expected = -1;
  if (!h->fd.compare_exchange_strong(expected, fd)) {
    ::close(fd);
    return expected;
  }
  return fd;
}

void LayerFs::RecordOpen(const Node* node) {
  if (!options_.record_reads || node->upper.load(std::memory_order_acquire)) return;
  uint32_t lower = node->lower.load(std::memory_order_acquire);
  if (lower != kNoLower && options_.record_reads->FirstOpen(lower)) options_.record_reads->Append(index_.Path(lower));
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

// An O_DIRECT open fails as the backing filesystem's would (EINVAL without O_DIRECT support).
// With passthrough the kernel opens each open's own backing file with the caller's flags, so
// O_DIRECT I/O goes straight to the backing filesystem and never reaches ReadDirect.
int LayerFs::OpenDirect(FileHandle* h, fuse_file_info* fi) {
  if (!(fi->flags & O_DIRECT)) return 0;
  int dfd = DirectFd(h->direct_fd, h->fd);
  return dfd < 0 ? dfd : 0;
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
  h->fd = OpenUpper(node.get(), fi->flags & ~(O_TRUNC | O_DIRECT));
  fuse_entry_param e{};
  r = h->fd < 0 ? h->fd.load() : OpenDirect(h.get(), fi);
  if (r != 0 || Attr(node.get(), &e.attr, h->fd) != 0) {
    table_.Forget(node.get(), 1);
    return (void)fuse_reply_err(req, r != 0 ? -r : EIO);
  }
  Show(&e.attr);
  e.ino = reinterpret_cast<fuse_ino_t>(node.get());
  e.attr_timeout = Timeout(node.get());
  e.entry_timeout = EntryTimeout(node.get());
  fi->noflush = !FlushReports(fi->flags);
  // Until the kernel has been refused an OPEN it still sends RELEASE, so a create keeps its
  // handle (a workload that only creates pays no open per WRITE). One created just before that
  // refusal and closed after it gets no RELEASE: it stays until the unmount closes it.
  if (options_.no_open && open_refused_.load(std::memory_order_acquire)) {
    h.reset();  // no RELEASE will come for it: requests make their own (FileOf)
    fi->fh = 0;
    fi->keep_cache = 1;  // what the kernel's no-open opens get; the page cache is this mount's
    if (fuse_reply_create(req, &e, fi) != 0) table_.Forget(node.get(), 1);
    return;
  }
  passthrough_.Attach(req, node.get(), h.get(), fi);  // a new file: nothing holds it yet
  fi->fh = reinterpret_cast<uint64_t>(handles_.Adopt(std::move(h)));
  if (fuse_reply_create(req, &e, fi) != 0) {
    Close(req, node.get(), Handle(fi));
    table_.Forget(node.get(), 1);
  }
}

// The fd a read should use: a lower handle switches to the upper copy once one exists.
// fd / -errno.
int LayerFs::ReadFd(Node* node, FileHandle* h) {
  if (!h->lower) return h->fd;
  int u = h->upper_fd.load(std::memory_order_acquire);
  if (u >= 0) return u;
  if (!node->upper.load(std::memory_order_acquire)) return LowerFd(h);
  int fd = OpenUpper(node, O_RDONLY);
  if (fd < 0) return LowerFd(h);
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
  RequestFile file = FileOf(ino, fi, /*write=*/false);
  if (file.h == nullptr) return (void)fuse_reply_err(req, -file.err);
  FileHandle* h = file.h;
  Node* node = ToNode(ino);
  int fd = ReadFd(node, h);
  if (fd < 0) return (void)fuse_reply_err(req, -fd);
  if (fd == h->fd && h->lower) {
    if (int r = EnsureLower(node->lower.load(std::memory_order_acquire), off, size); r != 0)
      return (void)fuse_reply_err(req, -r);
  }
  if (fi->flags & O_DIRECT) return ReadDirect(req, fd == h->fd ? h->direct_fd : h->upper_direct_fd, fd, size, off);
  if (size < kSmallRead) return ReadIntoThreadBuffer(req, fd, size, off);
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void LayerFs::WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  RequestFile file = FileOf(ino, fi, /*write=*/true);
  if (file.h == nullptr) return (void)fuse_reply_err(req, -file.err);
  FileHandle* h = file.h;
  if (fi->flags & O_DIRECT) return WriteDirect(req, h, in, off);
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = h->fd;
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
  if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
  fuse_reply_write(req, static_cast<size_t>(n));
}

// FLUSH is a synchronous round trip at every close(2) (a third of what reading a small file
// costs), so opens whose flush cannot report anything ask the kernel not to send it
// (FOPEN_NOFLUSH, per open; mergerfs's flush-on-close=opened-for-write): an open without write
// access (lower files are never written through the daemon), and any open when the upper's
// filesystem has no flush of its own (ext4, xfs, tmpfs: their close(2) always succeeds, write
// errors surface at write or fsync). We implement no remote locks, so FLUSH carries no lock
// release either. The cost: none on those filesystems; elsewhere (an NFS upper) writers keep it.
bool LayerFs::FlushReports(int flags) const {
  return (flags & O_ACCMODE) != O_RDONLY && upper_flush_reports_;
}

bool LayerFs::CloseMayFail(int fd) {
  struct statfs sf;
  if (::fstatfs(fd, &sf) != 0) return true;
  switch (static_cast<unsigned long>(sf.f_type)) {
    case EXT4_SUPER_MAGIC:
    case XFS_SUPER_MAGIC:
    case TMPFS_MAGIC: return false;
    default: return true;
  }
}

// close(dup(fd)) reports delayed write errors (NFS-style) at close(2), as a local file would.
// A read-only open (no flush: a kernel without FOPEN_NOFLUSH sends it anyway) may hold no fd.
// no_open: ENOSYS, and the kernel sends FLUSH no more.
void LayerFs::Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (fi->fh == 0) return (void)fuse_reply_err(req, ENOSYS);
  if (Handle(fi)->fd < 0) return (void)fuse_reply_err(req, 0);
  int fd = ::dup(Handle(fi)->fd);
  int r = fd < 0 ? errno : (::close(fd) == 0 ? 0 : errno);
  fuse_reply_err(req, r);
}

void LayerFs::Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (fi->fh != 0) Close(req, ToNode(ino), Handle(fi));  // no_open: a create's open, before the first OPEN
  fuse_reply_err(req, 0);
}

void LayerFs::FSync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  if (!options_.sync_upper) return (void)fuse_reply_err(req, 0);  // before FileOf: no open for nothing
  RequestFile file = FileOf(ino, fi, /*write=*/false);
  if (file.h == nullptr) return (void)fuse_reply_err(req, -file.err);
  int fd = file.h->UpperFd();  // a lower file has nothing of this container's to sync
  if (fd < 0) return (void)fuse_reply_err(req, 0);
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
  RequestFile file = FileOf(ino, fi, /*write=*/true);
  if (file.h == nullptr) return (void)fuse_reply_err(req, -file.err);
  int r = ::fallocate(file.h->fd, mode, offset, length);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

// A lazy layer's file is all hole until fetched: SEEK_DATA / SEEK_HOLE wait for the whole of it.
void LayerFs::LSeek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  RequestFile file = FileOf(ino, fi, /*write=*/false);
  if (file.h == nullptr) return (void)fuse_reply_err(req, -file.err);
  FileHandle* h = file.h;
  Node* node = ToNode(ino);
  int fd = ReadFd(node, h);
  if (fd < 0) return (void)fuse_reply_err(req, -fd);
  if (fd == h->fd && h->lower && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
    uint32_t idx = node->lower.load(std::memory_order_acquire);
    if (int e = EnsureLower(idx, 0, index_.node(idx).size); e != 0) return (void)fuse_reply_err(req, -e);
  }
  off_t r = ::lseek(fd, off, whence);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

}  // namespace layerfs
