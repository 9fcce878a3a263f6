#include "layerstore/estargz/estargz_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include <optional>

#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_toc.h"
#include "layerstore/store/blob_store.h"

namespace layerfs {

namespace {

const char* TocType(archive_entry* e) {
  if (archive_entry_hardlink(e) != nullptr) return "hardlink";
  switch (archive_entry_filetype(e)) {
    case AE_IFDIR: return "dir";
    case AE_IFLNK: return "symlink";
    case AE_IFCHR: return "char";
    case AE_IFBLK: return "block";
    case AE_IFIFO: return "fifo";
    default: return "reg";
  }
}

EstargzTocEntry TocEntry(archive_entry* e) {
  EstargzTocEntry t;
  t.name = archive_entry_pathname(e);
  t.type = TocType(e);
  t.mode = archive_entry_mode(e);
  t.uid = static_cast<uint32_t>(archive_entry_uid(e));
  t.gid = static_cast<uint32_t>(archive_entry_gid(e));
  if (const char* u = archive_entry_uname(e)) t.user_name = u;
  if (const char* g = archive_entry_gname(e)) t.group_name = g;
  t.mtime_sec = archive_entry_mtime(e);
  t.mtime_nsec = static_cast<uint32_t>(archive_entry_mtime_nsec(e));
  if (t.type == "hardlink") t.link_name = archive_entry_hardlink(e);
  if (t.type == "symlink" && archive_entry_symlink(e)) t.link_name = archive_entry_symlink(e);
  if (t.type == "char" || t.type == "block") {
    t.dev_major = static_cast<uint32_t>(archive_entry_rdevmajor(e));
    t.dev_minor = static_cast<uint32_t>(archive_entry_rdevminor(e));
  }
  if (t.type == "reg") t.size = static_cast<uint64_t>(archive_entry_size(e));
  archive_entry_xattr_reset(e);
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
    t.xattrs[name] = std::string(static_cast<const char*>(value), size);
  return t;
}

}  // namespace

// The tar stream (libarchive, unbuffered) flows into the current gzip member (zlib); a new
// member starts wherever the format asks for one.
struct EstargzWriter::Impl {
  std::optional<BlobWriter> blob;
  uint64_t chunk_size = 0;
  Sha256 diff_sha;
  uint64_t tar_size = 0;
  z_stream z = {};
  bool deflating = false;
  archive* tar = nullptr;
  EstargzToc toc;
  Status error;

  ~Impl() {
    if (tar) archive_write_free(tar);
    deflateEnd(&z);
  }

  Status Deflate(const void* data, size_t n, int flush) {
    z.next_in = static_cast<Bytef*>(const_cast<void*>(data));
    z.avail_in = static_cast<uInt>(n);
    unsigned char out[1 << 16];
    do {
      z.next_out = out;
      z.avail_out = sizeof out;
      int rc = deflate(&z, flush);
      if (rc == Z_STREAM_ERROR) return Status::Error(EIO, "eStargz: deflate failed");
      RETURN_IF_ERROR(blob->Write(out, sizeof out - z.avail_out));
    } while (z.avail_out == 0 || (flush == Z_FINISH && z.avail_in > 0));
    return Status::Ok();
  }

  // Ends the current gzip member; the next byte written starts a new one at the returned offset.
  Result<uint64_t> NewMember() {
    if (deflating) {
      RETURN_IF_ERROR(Deflate(nullptr, 0, Z_FINISH));
      deflateReset(&z);
    }
    deflating = true;
    return blob->bytes_written();
  }

  static la_ssize_t TarOut(archive*, void* ctx, const void* buf, size_t n) {
    auto* self = static_cast<Impl*>(ctx);
    self->diff_sha.Update(buf, n);
    self->tar_size += n;
    Status st = self->Deflate(buf, n, Z_NO_FLUSH);
    if (!st.ok()) {
      self->error = st;
      return -1;
    }
    return static_cast<la_ssize_t>(n);
  }

  Status Fail(const std::string& what) {
    if (!error.ok()) return error;
    const char* msg = archive_error_string(tar);
    return Status::Error(EIO, what + ": " + (msg ? msg : "archive write failed"));
  }

  Status Open() {
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return Status::Error(ENOMEM, "eStargz: deflateInit");
    ASSIGN_OR_RETURN(uint64_t first, NewMember());
    (void)first;
    tar = archive_write_new();
    archive_write_set_format_pax_restricted(tar);
    archive_write_set_bytes_per_block(tar, 0);
    if (archive_write_open(tar, this, nullptr, TarOut, nullptr) != ARCHIVE_OK) return Fail("eStargz tar");
    return Status::Ok();
  }

  Status Header(archive_entry* e, const std::string& name) {
    if (archive_write_header(tar, e) != ARCHIVE_OK) return Fail("eStargz entry " + name);
    // The header (and the previous entry's padding) stay in the member they were written to.
    return Status::Ok();
  }

  // Writes a regular file's data, `read` filling a buffer at a time, chunk by chunk, each in
  // its own gzip member, and records its TOC entries (the first one is `t`).
  template <class Read>
  Status Data(const EstargzTocEntry& t, Read&& read) {
    Sha256 whole;
    uint64_t done = 0;
    std::string buf(1 << 16, '\0');
    while (done < t.size) {
      EstargzTocEntry c = t;
      if (done > 0) {
        c = EstargzTocEntry();
        c.name = t.name;
        c.type = "chunk";
      }
      ASSIGN_OR_RETURN(c.offset, NewMember());
      c.chunk_offset = done;
      uint64_t len = std::min(chunk_size, t.size - done);
      c.chunk_size = done + len < t.size ? len : 0;
      Sha256 part;
      for (uint64_t left = len; left > 0;) {
        ASSIGN_OR_RETURN(size_t n, read(buf.data(), static_cast<size_t>(std::min<uint64_t>(left, buf.size()))));
        if (n == 0) return Status::Error(EIO, "eStargz entry " + t.name + ": data ends early");
        part.Update(buf.data(), n);
        whole.Update(buf.data(), n);
        if (archive_write_data(tar, buf.data(), n) < 0) return Fail("eStargz entry " + t.name);
        left -= n;
      }
      c.chunk_digest = part.Finish().str();
      done += len;
      toc.entries.push_back(std::move(c));
    }
    toc.entries[toc.entries.size() - (t.size + chunk_size - 1) / chunk_size].digest = whole.Finish().str();
    return Status::Ok();
  }
};

EstargzWriter::EstargzWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EstargzWriter::~EstargzWriter() = default;

Result<std::unique_ptr<EstargzWriter>> EstargzWriter::Create(const Store& store, uint64_t chunk_size) {
  if (chunk_size == 0) return Status::Error(EINVAL, "eStargz chunk size must be positive");
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(BlobWriter w, BlobStore(store).NewWriter());
  impl->blob.emplace(std::move(w));
  impl->chunk_size = chunk_size;
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<EstargzWriter>(new EstargzWriter(std::move(impl)));
}

Status EstargzWriter::AddArchiveEntry(archive* in, archive_entry* e) {
  EstargzTocEntry t = TocEntry(e);
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> out(archive_entry_clone(e), archive_entry_free);
  if (t.type != "reg") archive_entry_set_size(out.get(), 0);
  RETURN_IF_ERROR(impl_->Header(out.get(), t.name));
  if (t.type != "reg" || t.size == 0) {
    impl_->toc.entries.push_back(std::move(t));
    return Status::Ok();
  }
  return impl_->Data(t, [&](char* buf, size_t n) -> Result<size_t> {
    la_ssize_t got = archive_read_data(in, buf, n);
    if (got < 0) {
      const char* msg = archive_error_string(in);
      return Status::Error(EIO, std::string("read layer: ") + (msg ? msg : "archive read failed"));
    }
    return static_cast<size_t>(got);
  });
}

Status EstargzWriter::AddLandmark(bool prefetch) {
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  const char* name = prefetch ? kEstargzPrefetchLandmark : kEstargzNoPrefetchLandmark;
  archive_entry_set_pathname(e.get(), name);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), 1);
  RETURN_IF_ERROR(impl_->Header(e.get(), name));
  EstargzTocEntry t = TocEntry(e.get());
  bool given = false;
  return impl_->Data(t, [&](char* buf, size_t) -> Result<size_t> {
    if (given) return size_t{0};
    buf[0] = 0x0f;  // the spec's landmark content
    given = true;
    return size_t{1};
  });
}

Result<EstargzBlob> EstargzWriter::Finish(const std::string& media_type) {
  Impl& w = *impl_;
  if (archive_write_finish_entry(w.tar) != ARCHIVE_OK) return w.Fail("eStargz tar");  // padding stays behind
  ASSIGN_OR_RETURN(uint64_t toc_offset, w.NewMember());
  std::string json = EstargzTocJson(w.toc);
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), kEstargzTocName);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(json.size()));
  RETURN_IF_ERROR(w.Header(e.get(), kEstargzTocName));
  if (archive_write_data(w.tar, json.data(), json.size()) < 0) return w.Fail("eStargz TOC");
  if (archive_write_close(w.tar) != ARCHIVE_OK) return w.Fail("eStargz tar");
  RETURN_IF_ERROR(w.NewMember().status());  // ends the TOC's member
  w.deflating = false;
  std::string footer = EstargzFooter(toc_offset);
  RETURN_IF_ERROR(w.blob->Write(footer.data(), footer.size()));
  uint64_t size = w.blob->bytes_written();
  ASSIGN_OR_RETURN(Digest digest, w.blob->Commit());
  EstargzBlob out;
  out.toc_digest = Sha256Of(json);
  out.diff_id = w.diff_sha.Finish();
  out.blob = Descriptor{media_type, digest, size, {{kEstargzTocDigestAnnotation, out.toc_digest.str()}, {kEstargzUncompressedSizeAnnotation, std::to_string(w.tar_size)}}, nlohmann::json()};
  return out;
}

}  // namespace layerfs
