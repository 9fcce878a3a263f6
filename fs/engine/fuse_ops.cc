// Binds libfuse's low-level callbacks to LayerFs member functions.
#include "fs/engine/layer_fs.h"

#include <pthread.h>

namespace layerfs {

namespace {

LayerFs* Fs(fuse_req_t req) { return static_cast<LayerFs*>(fuse_req_userdata(req)); }

// Lives for the full expression `Counted(req, op)->Operation(...)`: the operation runs with
// thread cancellation disabled. libfuse 3.18 stops its io_uring threads with pthread_cancel,
// and a cancel that lands in a close(2) inside a destructor (noexcept) ends the process in
// std::terminate; its /dev/fuse workers disable cancellation while they process a request for
// the same reason. A cancel that arrives meanwhile acts at libfuse's next cancellation point.
class Serving {
 public:
  explicit Serving(LayerFs* fs) : fs_(fs) { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state_); }
  ~Serving() { pthread_setcancelstate(old_state_, nullptr); }
  Serving(const Serving&) = delete;
  Serving& operator=(const Serving&) = delete;
  LayerFs* operator->() const { return fs_; }

 private:
  LayerFs* fs_;
  int old_state_ = 0;
};

// The filesystem of req, with req counted as an `op` request (fs/engine/request_stats.h).
Serving Counted(fuse_req_t req, RequestStats::Op op) {
  LayerFs* fs = Fs(req);
  fs->stats().Add(op);
  return Serving(fs);
}

// The read of the request counts themselves stays out of them.
Serving CountedGetXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (LayerFs::IsStatsRead(ino, name)) return Serving(Fs(req));
  return Counted(req, RequestStats::kGetXattr);
}

}  // namespace

const fuse_lowlevel_ops& LayerFs::Operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = [](void* data, fuse_conn_info* conn) { static_cast<LayerFs*>(data)->Init(conn); };
    o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) { Counted(r, RequestStats::kLookup)->Lookup(r, p, n); };
    o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) {
      Counted(r, RequestStats::kForget)->Forget(i, n);
      fuse_reply_none(r);
    };
    o.forget_multi = [](fuse_req_t r, size_t c, fuse_forget_data* f) {
      Counted(r, RequestStats::kBatchForget)->ForgetMulti(c, f);
      fuse_reply_none(r);
    };
    o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kGetAttr)->GetAttr(r, i, fi); };
    o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info* fi) { Counted(r, RequestStats::kSetAttr)->SetAttr(r, i, a, s, fi); };
    o.readlink = [](fuse_req_t r, fuse_ino_t i) { Counted(r, RequestStats::kReadLink)->ReadLink(r, i); };
    o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) { Counted(r, RequestStats::kMkNod)->MkNod(r, p, n, m, d); };
    o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { Counted(r, RequestStats::kMkDir)->MkDir(r, p, n, m); };
    o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) { Counted(r, RequestStats::kUnlink)->Unlink(r, p, n); };
    o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) { Counted(r, RequestStats::kRmDir)->RmDir(r, p, n); };
    o.symlink = [](fuse_req_t r, const char* t, fuse_ino_t p, const char* n) { Counted(r, RequestStats::kSymLink)->SymLink(r, t, p, n); };
    o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned f) {
      Counted(r, RequestStats::kRename)->Rename(r, p, n, np, nn, f);
    };
    o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char* n) { Counted(r, RequestStats::kLink)->Link(r, i, p, n); };
    o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kOpen)->Open(r, i, fi); };
    o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t o2, fuse_file_info* fi) { Counted(r, RequestStats::kRead)->Read(r, i, s, o2, fi); };
    o.write_buf = [](fuse_req_t r, fuse_ino_t i, fuse_bufvec* b, off_t o2, fuse_file_info* fi) {
      Counted(r, RequestStats::kWrite)->WriteBuf(r, i, b, o2, fi);
    };
    o.flush = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kFlush)->Flush(r, i, fi); };
    o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kRelease)->Release(r, i, fi); };
    o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) { Counted(r, RequestStats::kFSync)->FSync(r, i, d, fi); };
    o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kOpenDir)->OpenDir(r, i, fi); };
    o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t o2, fuse_file_info* fi) { Counted(r, RequestStats::kReadDir)->ReadDir(r, i, s, o2, fi); };
    o.readdirplus = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t o2, fuse_file_info* fi) {
      Counted(r, RequestStats::kReadDirPlus)->ReadDirPlus(r, i, s, o2, fi);
    };
    o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Counted(r, RequestStats::kReleaseDir)->ReleaseDir(r, i, fi); };
    o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info*) { Counted(r, RequestStats::kFSyncDir)->FSyncDir(r, i, d); };
    o.statfs = [](fuse_req_t r, fuse_ino_t i) { Counted(r, RequestStats::kStatFs)->StatFs(r, i); };
    o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
      Counted(r, RequestStats::kSetXattr)->SetXattr(r, i, n, v, s, f);
    };
    o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) { CountedGetXattr(r, i, n)->GetXattr(r, i, n, s); };
    o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) { Counted(r, RequestStats::kListXattr)->ListXattr(r, i, s); };
    o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) { Counted(r, RequestStats::kRemoveXattr)->RemoveXattr(r, i, n); };
    o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) { Counted(r, RequestStats::kCreate)->Create(r, p, n, m, fi); };
    o.fallocate = [](fuse_req_t r, fuse_ino_t i, int m, off_t o2, off_t l, fuse_file_info* fi) {
      Counted(r, RequestStats::kFAllocate)->FAllocate(r, i, m, o2, l, fi);
    };
    o.ioctl = [](fuse_req_t r, fuse_ino_t i, unsigned cmd, void*, fuse_file_info*, unsigned, const void* in, size_t in_size,
                 size_t out_size) { Counted(r, RequestStats::kIoctl)->Ioctl(r, i, cmd, in, in_size, out_size); };
    o.lseek = [](fuse_req_t r, fuse_ino_t i, off_t o2, int w, fuse_file_info* fi) { Counted(r, RequestStats::kLSeek)->LSeek(r, i, o2, w, fi); };
    return o;
  }();
  return ops;
}

}  // namespace layerfs
