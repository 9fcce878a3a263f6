// LayerFs: the union filesystem engine behind a mount, one object per mount, shared by all
// FUSE worker threads. Lower entries come from the immutable MergedIndex (data from the layer
// trees, opened by path under one fd per layer); changes live in the upper directory in
// overlay's format (UpperFormat) and are found there on lookup. Per-inode mutexes serialise
// copy-up; there is no global lock. The kernel already serialises namespace changes within a
// directory (i_rwsem) and cross-directory renames, which the operations below rely on.
//
// Each FUSE operation is one small member function (ops_*.cc); fuse_ops.cc binds them.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/engine/id_map.h"
#include "fs/engine/inode_table.h"
#include "fs/engine/lazy_lowers.h"
#include "fs/engine/open_handles.h"
#include "fs/engine/passthrough.h"
#include "fs/engine/read_recorder.h"
#include "fs/engine/request_stats.h"
#include "fs/index/merged_index.h"
#include "fs/index/upper_format.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct FileHandle;

// openat(2); with O_NOATIME in flags where the caller may use it (owner of the file or
// CAP_FOWNER), without it where not (EPERM), as overlayfs opens its real files.
int OpenatNoAtime(int dirfd, const char* path, int flags);

struct LayerFsOptions {
  std::vector<std::string> layer_dirs;  // root of each lower layer's tree, bottom first
  std::string upper_dir;                // empty: read-only
  std::string work_dir;
  // Tuning (see the .cc for why): lower entries never change, so the kernel may keep them.
  // The upper too: the daemon is its only writer and invalidates what changes behind the
  // kernel's back (node_resolve.cc); the upper must not be changed behind a live mount.
  double lower_timeout = 86400.0;
  double upper_timeout = 86400.0;
  // `layerfs overlay`: renaming a lower directory copies its whole subtree up and makes it
  // opaque (fuse-overlayfs's way), so the upper is a self-contained overlay layer that any
  // overlay implementation reads as upper or lower. Off (mount mode): a redirect xattr.
  bool rename_copies_subtree = false;
  OwnerPolicy owners;         // ids shown/written (uidmapping=, squash_to_*): applied at the FUSE boundary
  bool static_nlink = false;  // directories show st_nlink 1 (fuse-overlayfs's static_nlink)
  // false (`volatile`, `fsync=0`): copy-up does not fsync its copy and the container's
  // fsync/fdatasync/fsyncdir return at once. Faster; a host crash may lose or truncate upper
  // files (as with overlayfs's volatile, which podman passes for every --rm container).
  bool sync_upper = true;
  // noatime: reads do not move the atime of upper files (overlayfs: touch_atime on the upper
  // follows the overlay mount's mode). The daemon opens backing files with O_NOATIME then; else
  // the upper's own filesystem (relatime by default) updates it as the daemon reads.
  bool noatime = false;
  bool nodiratime = false;  // noatime or nodiratime: listing an upper directory keeps its atime
  // fuse-overlayfs's xattr_permissions= (containers/storage passes it for force_mask): 0 off;
  // 1 or 2: every owner and mode the container sets lives only in the override xattr
  // (security.fuseoverlayfs.override_stat / user.fuseoverlayfs.override_stat), the upper's
  // files keep the daemon as owner and a mode it can use, as fuse-overlayfs does.
  int xattr_permissions = 0;
  bool posix_acl = true;  // POSIX ACLs where the mount is privileged (Init); off: `noacl`
  // dirsync (or sync): a change to an upper directory (create, delete, rename) is on disk
  // before the call returns, as on a dirsync ext4; the FUSE kernel leaves it to the daemon.
  bool dirsync = false;
  // Lower layers whose data arrives while mounted (lazy pull); null: every layer is complete.
  std::shared_ptr<LazyLowers> lazy;
  // `mount --record-reads`: the image files opened, first open first (read_recorder.h).
  std::shared_ptr<ReadRecorder> record_reads;
  // no_open (ops_file.cc, Open and FileOf): the kernel opens and closes files without a request (its
  // no-open mode), so a warm read of a cached file costs no round trip at all. What it costs:
  // no passthrough, a file opened for writing is copied up at its first write or truncate (not
  // at the open), O_DIRECT is refused at the first read or write (not at the open), and close(2)
  // reports no delayed write error of an upper that has them (NFS).
  bool no_open = false;
};

// Where the owners and modes a container sets are kept in the upper (fuse-overlayfs's rules).
enum class OwnerStore {
  kHost,         // on the upper's files (chown/chmod): host root
  kHostOrXattr,  // root of a user namespace: on the files where the namespace maps the id,
                 // else the override xattr (a symlink cannot hold one: chown's answer stands)
  kXattr,        // only in the override xattr: a plain user, or xattr_permissions= (force_mask)
};

class LayerFs {
 public:
  static Result<std::unique_ptr<LayerFs>> Create(MergedIndex index, const LayerFsOptions& options);
  ~LayerFs();

  static const fuse_lowlevel_ops& Operations();  // fuse_ops.cc
  void set_session(fuse_session* se) { session_ = se; }

  // --- operations (ops_entry.cc)
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void Forget(fuse_ino_t ino, uint64_t nlookup);
  void ForgetMulti(size_t count, fuse_forget_data* forgets);
  void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void ReadLink(fuse_req_t req, fuse_ino_t ino);
  void StatFs(fuse_req_t req, fuse_ino_t ino);
  // --- ops_dir.cc
  void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void RmDir(fuse_req_t req, fuse_ino_t parent, const char* name);
  // --- ops_namespace.cc
  void MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void SymLink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name);
  void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name);
  void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned flags);
  // --- ops_file.cc
  void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* buf, off_t off, fuse_file_info* fi);
  void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void FSync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void FSyncDir(fuse_req_t req, fuse_ino_t ino, int datasync);
  void FAllocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi);
  void LSeek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);
  // --- ops_ioctl.cc (chattr flags)
  void Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const void* in_buf, size_t in_bufsz, size_t out_bufsz);
  // --- ops_xattr.cc
  void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
  void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name);

  // The upper inode of a node that has an upper copy: its fd (for *at calls with an empty
  // path) and /proc/self/fd path (for calls that take a path; they follow to the inode).
  struct UpperRef {
    int fd = -1;  // dir_fd or file_fd
    std::string path() const { return UpperFormat::FdPath(fd, ""); }
  };

  // Requests served so far, by opcode (counted in fuse_ops.cc); readable through the mount as
  // RequestStats::kXattr of the root (IsStatsRead).
  RequestStats& stats() { return stats_; }
  static bool IsStatsRead(fuse_ino_t ino, const char* name) {
    return ino == FUSE_ROOT_ID && std::string_view(name) == RequestStats::kXattr;
  }

  const MergedIndex& index() const { return index_; }
  const Passthrough& passthrough() const { return passthrough_; }
  size_t inode_count() const { return table_.size(); }

 private:
  static void RefuseFileHandles(fuse_conn_info* conn);  // Init
  friend class CopyUp;
  LayerFs(MergedIndex index, const LayerFsOptions& options, UpperFormat format);

  // Lists the merged directory node from offset pos (ops_dir.cc), calling add(name, ino,
  // type, next offset) per entry until it returns false; 0 / -errno.
  using DirentSink = std::function<bool(const std::string&, uint64_t, mode_t, uint64_t)>;
  int ListFrom(Node* node, uint64_t pos, const DirentSink& add);

  // --- node resolution (node_resolve.cc)
  Node* ToNode(fuse_ino_t ino);
  std::shared_ptr<Node> Shared(fuse_ino_t ino);
  // Finds `name` in the merged dir; 0 or -errno. On success *out holds a counted reference
  // (one kernel lookup) that the caller hands to the kernel with ReplyEntry or drops.
  int LookupChild(const std::shared_ptr<Node>& dir, const std::string& name, std::shared_ptr<Node>* out);
  // The lower entry `name` visible under dir's lower source (ignores the upper).
  std::optional<uint32_t> LowerChild(Node* dir, const std::string& name) const;
  std::shared_ptr<Node> NodeForUpper(const std::shared_ptr<Node>& dir, const std::string& name, const struct stat& st);
  std::shared_ptr<Node> NodeForLower(const std::shared_ptr<Node>& dir, const std::string& name, uint32_t idx);
  // fd >= 0: an open upper file of node (still valid after its name was unlinked).
  int Attr(Node* node, struct stat* st, int fd = -1);
  void LowerAttr(uint32_t idx, struct stat* st) const;
  uint64_t LowerIno(uint32_t idx) const { return uint64_t{index_.node(idx).ino_node} + 1; }
  void ReplyEntry(fuse_req_t req, const std::shared_ptr<Node>& node);
  double Timeout(const Node* node) const;  // attributes
  double EntryTimeout(const Node* node) const;
  fuse_ino_t InoOf(const Node* node) const;
  // Drops the kernel's cached attributes of node (listing: a directory's cached listing too).
  void Invalidate(const Node* node, bool listing);
  bool privileged() const { return format_.privileged(); }
  OwnerStore owner_store() const { return owner_store_; }

  // --- upper side (copy_up.cc, whiteout handling in ops_*)
  int EnsureUpper(const std::shared_ptr<Node>& node);  // copy-up; 0 / -errno
  void LinkGroupMembers(uint32_t copied, int copy_dirfd, const std::string& copy_name);
  // Marks a non-directory node as upper, holding an O_PATH fd of dirfd/name.
  int AttachUpperFile(Node* node, int dirfd, const std::string& name);
  const std::vector<uint32_t>& GroupOf(uint32_t ino_node);  // lower hard-link members
  std::shared_ptr<Node> ResolveLowerDir(uint32_t idx);
  int OpenLower(uint32_t idx, int flags) const;  // fd / -errno
  // Whether lower entry idx comes from a lazy layer (LazyLowers): no passthrough for it.
  bool FromLazyLayer(uint32_t idx) const;
  // An open of an image file (not yet copied up) for --record-reads.
  void RecordOpen(const Node* node);
  // Before reading [offset, offset + length) of lower file idx: 0, or -EIO when a lazy layer
  // cannot supply it.
  int EnsureLower(uint32_t idx, uint64_t offset, uint64_t length) const;
  int OpenUpper(Node* node, int flags);                                       // fd / -errno (non-dirs)
  int OpenForFlags(Node* node);                                               // ops_ioctl.cc: fd / -errno
  int ReadFd(Node* node, FileHandle* h);                                      // fd / -errno
  int OpenBacking(Node* node, FileHandle* h, fuse_file_info* fi, bool lazy);  // open: 0 / -errno
  int LowerFd(FileHandle* h);                                                 // fd / -errno
  // The handle a READ, WRITE, ... works on: fi's, or (no_open: fi->fh 0) one made for this
  // request alone and closed with it. h null: err holds -errno.
  struct RequestFile {
    FileHandle* h = nullptr;
    std::unique_ptr<FileHandle> own;
    int err = 0;
  };
  RequestFile FileOf(fuse_ino_t ino, fuse_file_info* fi, bool write);
  int OpenDirect(FileHandle* h, fuse_file_info* fi);      // open/create with O_DIRECT: 0 / -errno
  bool FlushReports(int open_flags) const;                // whether FLUSH may fail (else FOPEN_NOFLUSH)
  static bool CloseMayFail(int fd);                       // the filesystem of fd has a flush of its own
  void Close(fuse_req_t req, Node* node, FileHandle* h);  // release: backing file share, fds
  void RetryOnNewInode(fuse_req_t req, const std::shared_ptr<Node>& node);
  // After creating `name` in dir's upper: owner = caller (as root) / override (rootless).
  int SetNewOwner(fuse_req_t req, Node* dir, int dirfd, const std::string& name, mode_t mode, bool is_dir);
  // POSIX ACLs of a new entry under dir: its mode, access ACL and (directories) default ACL.
  bool InheritAcl(fuse_req_t req, Node* dir, mode_t* mode, std::string* access_acl, std::string* default_acl);
  int SetNewEntryAcls(int dirfd, const std::string& name, const std::string& access_acl, const std::string& default_acl);
  // The value of xattr `name` of node (lower: the index; upper: the host): 0, -ENODATA, -errno.
  int ReadXattr(Node* node, const char* name, std::string* value);
  // After an access ACL was set on node by the caller of req: the kernel's S_ISGID rule.
  void DropSetgidAfterAcl(fuse_req_t req, Node* node);
  // Places a fully prepared entry (in work/) at dir/name, replacing a whiteout atomically.
  int InstallFromWork(int dirfd, const std::string& name, const std::string& work_name, bool replace_whiteout);
  std::string NewWorkName();
  int SyncDirChange(int dirfd);                             // LayerFsOptions::dirsync: fsync of a changed upper dir; 0 / -errno
  int RemoveUpperTree(int dirfd, const std::string& name);  // rm -r of a dir of whiteouts
  int IsMergedDirEmpty(const std::shared_ptr<Node>& dir);   // 0, -ENOTEMPTY, -errno
  int DeleteEntry(const std::shared_ptr<Node>& dir, const std::string& name, bool is_dir);
  // Creates dir/name with make(dirfd, name) (0 / -errno); over a whiteout it is built in work/
  // (directories made opaque) and swapped in. mode 0: keep the owner (link). *out: the new node, one kernel reference.
  template <class Make>
  int NewEntry(fuse_req_t req, const std::shared_ptr<Node>& dir, const std::string& name, mode_t mode,
               Make&& make, std::shared_ptr<Node>* out) {
    return NewEntryImpl(req, dir, name, mode, std::function<int(int, const std::string&)>(make), out);
  }
  int NewEntryImpl(fuse_req_t req, const std::shared_ptr<Node>& dir, const std::string& name, mode_t mode,
                   const std::function<int(int, const std::string&)>& make, std::shared_ptr<Node>* out);
  UpperRef RefOf(Node* node);
  int RenameChecked(const std::shared_ptr<Node>& sdir, const std::string& sname, const std::shared_ptr<Node>& snode,
                    const std::shared_ptr<Node>& ddir, const std::string& dname, const std::shared_ptr<Node>& dnode,
                    unsigned flags);
  int PrepareMovedDir(const std::shared_ptr<Node>& node, const std::shared_ptr<Node>& ddir, const std::string& dname);
  int CopyUpSubtree(const std::shared_ptr<Node>& dir);
  int RemoveWhiteouts(int dirfd);  // in an upper directory: 0 / -errno
  // Attributes as the caller sees them: owner policy (uidmapping=, squash_to_*) and
  // static_nlink applied; every reply with attributes goes through it.
  void Show(struct stat* st) const;
  // The stored owner for an owner a caller sets or creates with (-1: unchanged, kept).
  void ToStoredOwner(uid_t* uid, gid_t* gid) const;

  MergedIndex index_;
  LayerFsOptions options_;
  UpperFormat format_;
  OwnerStore owner_store_ = OwnerStore::kHost;
  std::vector<int> layer_fds_;
  int upper_fd_ = -1;
  int work_fd_ = -1;
  std::shared_ptr<Node> root_;
  InodeTable table_;
  fuse_session* session_ = nullptr;
  Passthrough passthrough_;
  OpenHandles handles_;
  RequestStats stats_;
  bool upper_flush_reports_ = false;       // CloseMayFail(upper): writers keep FLUSH (ops_file.cc)
  std::atomic<bool> open_refused_{false};  // no_open: an OPEN was answered ENOSYS
  bool no_opendir_ = false;                // the kernel lists directories without opendir (set in Init)
  bool posix_acl_ = false;                 // FUSE_CAP_POSIX_ACL: the kernel enforces ACLs, we inherit them (Init)
  std::atomic<uint64_t> work_counter_{0};
  static constexpr size_t kGroupLocks = 64;  // striped: copy-up of one hard-link group at a time
  std::mutex group_locks_[kGroupLocks];
  std::once_flag groups_once_;
  std::unordered_map<uint32_t, std::vector<uint32_t>> groups_;
};

}  // namespace layerfs
