#include "fs/container/commit_layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "fs/container/upper_listing.h"
#include "fs/engine/host_admin.h"
#include "fs/index/upper_format.h"
#include "layerstore/base/unique_fd.h"

namespace layerfs {

namespace fs = std::filesystem;

namespace {

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// gzip through libarchive's "raw" format (one headerless entry, filters applied) into the blob.
class GzipToBlob {
 public:
  explicit GzipToBlob(BlobWriter* out) : out_(out), a_(archive_write_new()) {}
  ~GzipToBlob() { archive_write_free(a_); }

  Status Open() {
    archive_write_set_format_raw(a_);
    archive_write_add_filter_gzip(a_);
    archive_write_set_filter_option(a_, "gzip", "timestamp", nullptr);  // reproducible bytes
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open(a_, this, nullptr, &GzipToBlob::OnWrite, nullptr) != ARCHIVE_OK) return Error("open gzip");
    archive_entry* entry = archive_entry_new();
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_pathname(entry, "layer.tar");
    int rc = archive_write_header(a_, entry);
    archive_entry_free(entry);
    return rc == ARCHIVE_OK ? Status::Ok() : Error("gzip header");
  }
  Status Write(const void* data, size_t len) {
    return archive_write_data(a_, data, len) == static_cast<la_ssize_t>(len) ? Status::Ok() : Error("gzip write");
  }
  Status Close() {
    if (archive_write_close(a_) != ARCHIVE_OK) return Error("gzip close");
    return status_;
  }

 private:
  static la_ssize_t OnWrite(archive*, void* self, const void* buf, size_t len) {
    auto* me = static_cast<GzipToBlob*>(self);
    me->status_ = me->out_->Write(buf, len);
    return me->status_.ok() ? static_cast<la_ssize_t>(len) : -1;
  }
  Status Error(const char* what) {
    if (!status_.ok()) return status_;
    const char* why = archive_error_string(a_);
    return Status::Error(EIO, std::string("commit: ") + what + ": " + (why ? why : "failed"));
  }

  BlobWriter* out_;
  archive* a_;
  Status status_;
};

// pax tar whose bytes are hashed (diff_id) and handed on to the gzip stage.
class HashingTar {
 public:
  explicit HashingTar(GzipToBlob* gzip) : gzip_(gzip), a_(archive_write_new()) {}
  ~HashingTar() { archive_write_free(a_); }

  Status Open() {
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    return archive_write_open(a_, this, nullptr, &HashingTar::OnWrite, nullptr) == ARCHIVE_OK ? Status::Ok()
                                                                                              : Error("open tar");
  }
  Status Header(archive_entry* entry) {
    ++entries_;
    return archive_write_header(a_, entry) == ARCHIVE_OK ? Status::Ok() : Error(archive_entry_pathname(entry));
  }
  Status Data(const void* data, size_t len) {
    return archive_write_data(a_, data, len) == static_cast<la_ssize_t>(len) ? Status::Ok() : Error("data");
  }
  // Streams a file's bytes as the current entry's data.
  Status DataFromFd(int fd, const std::string& what) {
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) RETURN_IF_ERROR(Data(buf, n));
    return n < 0 ? Status::FromErrno("read " + what) : Status::Ok();
  }
  Result<CommittedLayer> Close() {
    if (archive_write_close(a_) != ARCHIVE_OK) return Error("close tar");
    RETURN_IF_ERROR(status_);
    return CommittedLayer{sha_.Finish(), bytes_, entries_};
  }

 private:
  static la_ssize_t OnWrite(archive*, void* self, const void* buf, size_t len) {
    auto* me = static_cast<HashingTar*>(self);
    me->sha_.Update(buf, len);
    me->bytes_ += len;
    me->status_ = me->gzip_->Write(buf, len);
    return me->status_.ok() ? static_cast<la_ssize_t>(len) : -1;
  }
  Status Error(const std::string& what) {
    if (!status_.ok()) return status_;
    const char* why = archive_error_string(a_);
    return Status::Error(EIO, "commit: tar " + what + ": " + (why ? why : "failed"));
  }

  GzipToBlob* gzip_;
  archive* a_;
  Sha256 sha_;
  uint64_t bytes_ = 0;
  uint64_t entries_ = 0;
  Status status_;
};

using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;
EntryPtr NewEntry(const std::string& path) {
  EntryPtr e(archive_entry_new(), &archive_entry_free);
  archive_entry_set_pathname(e.get(), path.c_str());
  return e;
}

bool KeepXattr(const std::string& name) {
  if (UpperFormat::IsPrivateXattr(name)) return false;
  return name.starts_with("user.") || name.starts_with("trusted.") || name == "security.capability";
}

std::map<std::string, std::string> UpperXattrs(const std::string& fd_path) {
  std::map<std::string, std::string> out;
  char names[16384];
  ssize_t n = llistxattr(fd_path.c_str(), names, sizeof(names));
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
    std::string name(names + i);
    if (!KeepXattr(name)) continue;
    char value[65536];
    ssize_t v = lgetxattr(fd_path.c_str(), name.c_str(), value, sizeof(value));
    if (v >= 0) out[name] = std::string(value, v);
  }
  return out;
}

class CommitWalker {
 public:
  CommitWalker(const MergedIndex& image, const std::vector<fs::path>& trees, HashingTar* tar)
      : image_(image), trees_(trees), tar_(tar), format_(HasHostAdmin()) {}

  // Emits the entries of one upper dir. source: the lower dir seen through it (none: opaque or
  // new); full: the dir is opaque in the new layer, so lower entries must be emitted too.
  Status WalkDir(int dirfd, const UpperListing& listing, const std::string& rel, std::optional<uint32_t> shown_source,
                 bool full) {
    const std::optional<uint32_t> source = listing.opaque ? std::nullopt : shown_source;
    std::map<std::string, std::optional<uint32_t>> lower_only;  // name -> node, emitted when full
    if (full && source) {
      const MergedNode& dir = image_.node(*source);
      for (uint32_t c = dir.first_child; c < dir.first_child + dir.child_count; ++c) lower_only[std::string(image_.name(c))] = c;
    }
    for (const auto& name : listing.entries) lower_only.erase(name);
    for (const auto& name : listing.whiteouts) lower_only.erase(name);
    std::set<std::string> names(listing.entries.begin(), listing.entries.end());
    if (!full) names.insert(listing.whiteouts.begin(), listing.whiteouts.end());
    for (const auto& [name, node] : lower_only) names.insert(name);
    for (const auto& name : names) {
      std::string path = Join(rel, name);
      if (lower_only.count(name)) RETURN_IF_ERROR(EmitLower(*lower_only[name], path));
      else if (std::binary_search(listing.entries.begin(), listing.entries.end(), name))
        RETURN_IF_ERROR(EmitUpper(dirfd, name, path, source, full));
      else
        RETURN_IF_ERROR(EmitMarker(Join(rel, ".wh." + name)));
    }
    return Status::Ok();
  }

 private:
  Status EmitMarker(const std::string& path) {
    EntryPtr e = NewEntry(path);
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), 0);
    return tar_->Header(e.get());
  }

  Status EmitUpper(int dirfd, const std::string& name, const std::string& path, std::optional<uint32_t> source,
                   bool full) {
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno("stat upper /" + path);
    if (S_ISSOCK(st.st_mode)) return Status::Ok();
    ASSIGN_OR_RETURN(EntryPtr e, UpperHeader(dirfd, name, path, st));
    if (S_ISDIR(st.st_mode)) return EmitUpperDir(dirfd, name, path, source, full, e.get());
    if (st.st_nlink > 1) {  // any non-directory may be hard linked (fifos, symlinks too)
      auto [it, first] = upper_links_.try_emplace({st.st_dev, st.st_ino}, path);
      if (!first) return EmitHardlink(e.get(), it->second);
    }
    if (S_ISREG(st.st_mode)) return EmitUpperFile(dirfd, name, path, e.get());
    return tar_->Header(e.get());
  }

 public:
  // The upper root becomes "./" only when its owner, mode, mtime or xattrs differ from the image's.
  Status EmitRootIfChanged(int parent_fd, const std::string& name) {
    struct stat st;
    if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno("stat upper root");
    ASSIGN_OR_RETURN(EntryPtr e, UpperHeader(parent_fd, name, "./", st));
    if (image_.size() > 0) {
      const MergedNode& root = image_.node(MergedIndex::kRoot);
      std::map<std::string, std::string> lower_xattrs;
      for (const auto& [k, v] : image_.Xattrs(MergedIndex::kRoot))
        if (KeepXattr(std::string(k))) lower_xattrs[std::string(k)] = std::string(v);
      bool same = (root.mode & 07777) == (archive_entry_mode(e.get()) & 07777) && root.uid == archive_entry_uid(e.get()) &&
                  root.mtime_sec == archive_entry_mtime(e.get()) &&
                  root.gid == archive_entry_gid(e.get()) && lower_xattrs == UpperXattrs(UpperFormat::FdPath(parent_fd, name));
      if (same) return Status::Ok();
    }
    return tar_->Header(e.get());
  }

 private:
  // Header of an upper entry: its stat, with override_stat and the xattrs a layer may carry.
  Result<EntryPtr> UpperHeader(int dirfd, const std::string& name, const std::string& path, const struct stat& st) {
    EntryPtr e = NewEntry(path);
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_unset_atime(e.get());
    archive_entry_unset_ctime(e.get());
    archive_entry_unset_birthtime(e.get());
    archive_entry_set_ino(e.get(), 0);
    archive_entry_set_dev(e.get(), 0);
    archive_entry_set_nlink(e.get(), 0);
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(e.get(), 0);
    if (auto o = format_.Override(dirfd, name)) {
      archive_entry_set_uid(e.get(), o->uid);
      archive_entry_set_gid(e.get(), o->gid);
      archive_entry_set_perm(e.get(), o->mode & 07777);
    }
    for (const auto& [k, v] : UpperXattrs(UpperFormat::FdPath(dirfd, name)))
      archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(dirfd, name.c_str(), target, sizeof(target) - 1);
      if (n < 0) return Status::FromErrno("readlink upper /" + path);
      target[n] = '\0';
      archive_entry_set_symlink(e.get(), target);
    }
    return e;
  }

  Status EmitUpperFile(int dirfd, const std::string& name, const std::string& path, archive_entry* e) {
    UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) return Status::FromErrno("open upper /" + path);
    RETURN_IF_ERROR(tar_->Header(e));
    return tar_->DataFromFd(fd.get(), "upper /" + path);
  }

  Status EmitHardlink(archive_entry* e, const std::string& target) {
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    return tar_->Header(e);
  }

  Status EmitUpperDir(int dirfd, const std::string& name, const std::string& path, std::optional<uint32_t> source,
                      bool full, archive_entry* e) {
    UniqueFd child(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (child.get() < 0) return Status::FromErrno("open upper dir /" + path);
    ASSIGN_OR_RETURN(UpperListing listing, ListUpperDir(child.get(), format_, "/" + path));
    std::optional<uint32_t> child_source = image_.LowerDirOf(source, name, listing.redirect);
    RETURN_IF_ERROR(tar_->Header(e));
    bool opaque_here = listing.opaque || listing.redirect.has_value();
    if (opaque_here) RETURN_IF_ERROR(EmitMarker(Join(path, ".wh..wh..opq")));
    return WalkDir(child.get(), listing, path, child_source, full || listing.redirect.has_value());
  }

  // An entry of the lower view, copied into the new layer (inside a renamed lower dir).
  Status EmitLower(uint32_t node, const std::string& path) {
    const MergedNode& n = image_.node(node);
    EntryPtr e = NewEntry(path);
    archive_entry_set_mode(e.get(), n.mode);
    archive_entry_set_uid(e.get(), n.uid);
    archive_entry_set_gid(e.get(), n.gid);
    archive_entry_set_mtime(e.get(), n.mtime_sec, n.mtime_nsec);
    archive_entry_set_rdev(e.get(), n.rdev);
    for (const auto& [k, v] : image_.Xattrs(node))
      if (KeepXattr(std::string(k))) archive_entry_xattr_add_entry(e.get(), std::string(k).c_str(), v.data(), v.size());
    if (S_ISLNK(n.mode)) archive_entry_set_symlink(e.get(), std::string(image_.LinkTarget(node)).c_str());
    if (S_ISDIR(n.mode)) {
      RETURN_IF_ERROR(tar_->Header(e.get()));
      for (uint32_t c = n.first_child; c < n.first_child + n.child_count; ++c)
        RETURN_IF_ERROR(EmitLower(c, Join(path, image_.name(c))));
      return Status::Ok();
    }
    if (n.nlink > 1) {
      auto [it, first] = lower_links_.try_emplace(n.ino_node, path);
      if (!first) return EmitHardlink(e.get(), it->second);
    }
    if (!S_ISREG(n.mode)) return tar_->Header(e.get());
    archive_entry_set_size(e.get(), n.size);
    fs::path data = trees_.at(n.layer) / image_.Path(node);
    UniqueFd fd(open(data.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) return Status::FromErrno("open layer file " + data.string());
    RETURN_IF_ERROR(tar_->Header(e.get()));
    return tar_->DataFromFd(fd.get(), data.string());
  }

  const MergedIndex& image_;
  const std::vector<fs::path>& trees_;
  HashingTar* tar_;
  UpperFormat format_;
  std::map<std::pair<dev_t, ino_t>, std::string> upper_links_;  // inode -> first tar path
  std::map<uint32_t, std::string> lower_links_;
};

}  // namespace

Result<CommittedLayer> WriteCommitLayer(const fs::path& upper_dir, const MergedIndex& image,
                                        const std::vector<fs::path>& layer_trees, BlobWriter* out) {
  fs::path upper = upper_dir.lexically_normal();
  if (!upper.has_filename()) upper = upper.parent_path();  // "a/b/" -> "a/b"
  UniqueFd root(open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return Status::FromErrno("open upper dir " + upper.string());
  fs::path parent = upper.parent_path();
  UniqueFd parent_fd(open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (parent_fd.get() < 0) return Status::FromErrno("open " + parent.string());
  GzipToBlob gzip(out);
  RETURN_IF_ERROR(gzip.Open());
  HashingTar tar(&gzip);
  RETURN_IF_ERROR(tar.Open());
  ASSIGN_OR_RETURN(UpperListing listing, ListUpperDir(root.get(), UpperFormat(HasHostAdmin()), "/"));
  std::optional<uint32_t> lower_root;
  if (image.size() > 0) lower_root = MergedIndex::kRoot;
  CommitWalker walker(image, layer_trees, &tar);
  RETURN_IF_ERROR(walker.EmitRootIfChanged(parent_fd.get(), upper.filename().string()));
  RETURN_IF_ERROR(walker.WalkDir(root.get(), listing, "", lower_root, false));
  ASSIGN_OR_RETURN(CommittedLayer layer, tar.Close());
  RETURN_IF_ERROR(gzip.Close());
  return layer;
}

}  // namespace layerfs
