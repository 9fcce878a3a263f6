// Binds libfuse's low-level callbacks to LayerFs member functions.
#include "fs/engine/layer_fs.h"

namespace layerfs {

namespace {

LayerFs* Fs(fuse_req_t req) { return static_cast<LayerFs*>(fuse_req_userdata(req)); }

}  // namespace

const fuse_lowlevel_ops& LayerFs::Operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = [](void* data, fuse_conn_info* conn) { static_cast<LayerFs*>(data)->Init(conn); };
    o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) { Fs(r)->Lookup(r, p, n); };
    o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) {
      Fs(r)->Forget(i, n);
      fuse_reply_none(r);
    };
    o.forget_multi = [](fuse_req_t r, size_t c, fuse_forget_data* f) {
      Fs(r)->ForgetMulti(c, f);
      fuse_reply_none(r);
    };
    o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->GetAttr(r, i, fi); };
    o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info* fi) { Fs(r)->SetAttr(r, i, a, s, fi); };
    o.readlink = [](fuse_req_t r, fuse_ino_t i) { Fs(r)->ReadLink(r, i); };
    o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) { Fs(r)->MkNod(r, p, n, m, d); };
    o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { Fs(r)->MkDir(r, p, n, m); };
    o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) { Fs(r)->Unlink(r, p, n); };
    o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) { Fs(r)->RmDir(r, p, n); };
    o.symlink = [](fuse_req_t r, const char* t, fuse_ino_t p, const char* n) { Fs(r)->SymLink(r, t, p, n); };
    o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned f) {
      Fs(r)->Rename(r, p, n, np, nn, f);
    };
    o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char* n) { Fs(r)->Link(r, i, p, n); };
    o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->Open(r, i, fi); };
    o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t o2, fuse_file_info* fi) { Fs(r)->Read(r, i, s, o2, fi); };
    o.write_buf = [](fuse_req_t r, fuse_ino_t i, fuse_bufvec* b, off_t o2, fuse_file_info* fi) {
      Fs(r)->WriteBuf(r, i, b, o2, fi);
    };
    o.flush = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->Flush(r, i, fi); };
    o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->Release(r, i, fi); };
    o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) { Fs(r)->FSync(r, i, d, fi); };
    o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->OpenDir(r, i, fi); };
    o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t o2, fuse_file_info* fi) { Fs(r)->ReadDir(r, i, s, o2, fi); };
    o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->ReleaseDir(r, i, fi); };
    o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info*) { Fs(r)->FSyncDir(r, i, d); };
    o.statfs = [](fuse_req_t r, fuse_ino_t i) { Fs(r)->StatFs(r, i); };
    o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
      Fs(r)->SetXattr(r, i, n, v, s, f);
    };
    o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) { Fs(r)->GetXattr(r, i, n, s); };
    o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) { Fs(r)->ListXattr(r, i, s); };
    o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) { Fs(r)->RemoveXattr(r, i, n); };
    o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) { Fs(r)->Create(r, p, n, m, fi); };
    o.fallocate = [](fuse_req_t r, fuse_ino_t i, int m, off_t o2, off_t l, fuse_file_info* fi) {
      Fs(r)->FAllocate(r, i, m, o2, l, fi);
    };
    o.ioctl = [](fuse_req_t r, fuse_ino_t i, unsigned cmd, void*, fuse_file_info*, unsigned, const void* in, size_t in_size,
                 size_t out_size) { Fs(r)->Ioctl(r, i, cmd, in, in_size, out_size); };
    o.lseek = [](fuse_req_t r, fuse_ino_t i, off_t o2, int w, fuse_file_info* fi) { Fs(r)->LSeek(r, i, o2, w, fi); };
    return o;
  }();
  return ops;
}

}  // namespace layerfs
