#include "layerstore/build/layer_tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>

#include "layerstore/base/unique_fd.h"
#include "layerstore/store/blob_store.h"

namespace layerfs {

// Two libarchive writers in a row: `tar` formats entries (its output is the diff_id's input),
// `gz` is a raw-format writer used only for its gzip filter; its output goes to the blob.
struct LayerTarWriter::Impl {
  std::optional<BlobWriter> blob;
  Sha256 diff_sha;
  archive* tar = nullptr;
  archive* gz = nullptr;
  Status error;

  ~Impl() {
    if (tar) archive_write_free(tar);
    if (gz) archive_write_free(gz);
  }

  static la_ssize_t TarOut(archive*, void* ctx, const void* buf, size_t n) {
    auto* self = static_cast<Impl*>(ctx);
    self->diff_sha.Update(buf, n);
    if (archive_write_data(self->gz, buf, n) < 0) return -1;
    return static_cast<la_ssize_t>(n);
  }

  static la_ssize_t GzOut(archive*, void* ctx, const void* buf, size_t n) {
    auto* self = static_cast<Impl*>(ctx);
    Status st = self->blob->Write(buf, n);
    if (!st.ok()) {
      self->error = st;
      return -1;
    }
    return static_cast<la_ssize_t>(n);
  }

  Status Fail(archive* a, const std::string& what) {
    if (!error.ok()) return error;
    const char* msg = archive_error_string(a);
    return Status::Error(EIO, what + ": " + (msg ? msg : "archive write failed"));
  }

  Status Open() {
    gz = archive_write_new();
    archive_write_set_format_raw(gz);
    archive_write_add_filter_gzip(gz);
    archive_write_set_filter_option(gz, "gzip", "timestamp", nullptr);  // reproducible bytes
    archive_write_set_bytes_per_block(gz, 0);
    if (archive_write_open(gz, this, nullptr, GzOut, nullptr) != ARCHIVE_OK) return Fail(gz, "layer gzip");
    archive_entry* raw = archive_entry_new();
    archive_entry_set_pathname(raw, "layer.tar");
    archive_entry_set_filetype(raw, AE_IFREG);
    int rc = archive_write_header(gz, raw);
    archive_entry_free(raw);
    if (rc != ARCHIVE_OK) return Fail(gz, "layer gzip");
    tar = archive_write_new();
    archive_write_set_format_pax_restricted(tar);
    archive_write_set_bytes_per_block(tar, 0);
    if (archive_write_open(tar, this, nullptr, TarOut, nullptr) != ARCHIVE_OK) return Fail(tar, "layer tar");
    return Status::Ok();
  }

  archive_entry* Entry(const std::string& path, const TarEntryMeta& meta, unsigned type) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, meta.mode & 07777);
    archive_entry_set_uid(e, meta.uid);
    archive_entry_set_gid(e, meta.gid);
    archive_entry_set_mtime(e, meta.mtime_sec, meta.mtime_nsec);
    return e;
  }

  Status Header(archive_entry* e, const std::string& path) {
    int rc = archive_write_header(tar, e);
    archive_entry_free(e);
    return rc == ARCHIVE_OK ? Status::Ok() : Fail(tar, "layer entry " + path);
  }
};

LayerTarWriter::LayerTarWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LayerTarWriter::~LayerTarWriter() = default;

Result<std::unique_ptr<LayerTarWriter>> LayerTarWriter::Create(const Store& store) {
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(BlobWriter w, BlobStore(store).NewWriter());
  impl->blob.emplace(std::move(w));
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<LayerTarWriter>(new LayerTarWriter(std::move(impl)));
}

Status LayerTarWriter::AddDirectory(const std::string& path, const TarEntryMeta& meta) {
  return impl_->Header(impl_->Entry(path + "/", meta, AE_IFDIR), path);
}

Status LayerTarWriter::AddSymlink(const std::string& path, const TarEntryMeta& meta, const std::string& target) {
  archive_entry* e = impl_->Entry(path, meta, AE_IFLNK);
  archive_entry_set_symlink(e, target.c_str());
  return impl_->Header(e, path);
}

Status LayerTarWriter::AddFile(const std::string& path, const TarEntryMeta& meta, const std::filesystem::path& source) {
  UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno("open " + source.string());
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat " + source.string());
  archive_entry* e = impl_->Entry(path, meta, AE_IFREG);
  archive_entry_set_size(e, st.st_size);
  RETURN_IF_ERROR(impl_->Header(e, path));
  char buf[1 << 16];
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + source.string());
    if (n == 0) return Status::Error(EIO, source.string() + ": file shrank while being copied");
    if (n > left) n = static_cast<ssize_t>(left);  // a file that grew: the header said st_size
    if (archive_write_data(impl_->tar, buf, static_cast<size_t>(n)) < 0) return impl_->Fail(impl_->tar, "layer entry " + path);
    left -= n;
  }
  return Status::Ok();
}

Status LayerTarWriter::AddArchiveEntry(archive* in, archive_entry* e, const std::string& path,
                                       const std::string& hardlink) {
  archive_entry* out = archive_entry_clone(e);
  archive_entry_set_pathname(out, path.c_str());
  if (!hardlink.empty()) archive_entry_set_hardlink(out, hardlink.c_str());
  RETURN_IF_ERROR(impl_->Header(out, path));
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(in, buf, sizeof buf);
    if (n == 0) return Status::Ok();
    if (n < 0) {
      const char* msg = archive_error_string(in);
      return Status::Error(EIO, path + ": " + (msg ? msg : "archive read failed"));
    }
    if (archive_write_data(impl_->tar, buf, static_cast<size_t>(n)) < 0) return impl_->Fail(impl_->tar, "layer entry " + path);
  }
}

Result<LayerBlob> LayerTarWriter::Finish() {
  if (archive_write_close(impl_->tar) != ARCHIVE_OK) return impl_->Fail(impl_->tar, "layer tar");
  if (archive_write_close(impl_->gz) != ARCHIVE_OK) return impl_->Fail(impl_->gz, "layer gzip");
  uint64_t size = impl_->blob->bytes_written();
  ASSIGN_OR_RETURN(Digest digest, impl_->blob->Commit());
  LayerBlob out;
  out.blob = Descriptor{kOciLayerGzipType, digest, size, nlohmann::json(), nlohmann::json()};
  out.diff_id = impl_->diff_sha.Finish();
  return out;
}

}  // namespace layerfs
