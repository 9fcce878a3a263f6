#include "layerstore/layer/decompressor.h"

#include <archive.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

namespace layerfs {

namespace {

constexpr size_t kReadSize = 1 << 20;

struct Source {
  int fd;
  const std::function<void(uint64_t)>* progress;
  uint64_t consumed = 0;
  std::unique_ptr<char[]> buf{new char[kReadSize]};
};

la_ssize_t ReadBlob(archive* a, void* opaque, const void** out) {
  auto* src = static_cast<Source*>(opaque);
  ssize_t n;
  do n = ::read(src->fd, src->buf.get(), kReadSize);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    archive_set_error(a, errno, "read blob: %s", strerror(errno));
    return -1;
  }
  src->consumed += static_cast<uint64_t>(n);
  if (n > 0 && *src->progress) (*src->progress)(src->consumed);
  *out = src->buf.get();
  return n;
}

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_read_free)>;

Status ArchiveError(archive* a, const char* fallback) {
  const char* msg = archive_error_string(a);
  int code = archive_errno(a) > 0 ? archive_errno(a) : EINVAL;
  return Status::Error(code, msg ? msg : fallback);
}

ArchivePtr OpenFiltered(Source* src) {
  ArchivePtr a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_format_raw(a.get());
  archive_read_set_read_callback(a.get(), ReadBlob);
  archive_read_set_callback_data(a.get(), src);
  return a;
}

// Moves every uncompressed byte into full chunks; a short final chunk ends the stream.
Status Pump(archive* a, ChunkPipe* pipe) {
  for (;;) {
    Chunk* c = pipe->Acquire();
    if (c == nullptr) return Status::Ok();  // consumer stopped; its error wins
    while (c->size < c->capacity) {
      la_ssize_t n = archive_read_data(a, c->data.get() + c->size, c->capacity - c->size);
      if (n < 0) {
        pipe->Release(c);
        return ArchiveError(a, "decompression failed");
      }
      if (n == 0) break;
      c->size += static_cast<size_t>(n);
    }
    bool last = c->size < c->capacity;
    if (c->size > 0) pipe->Push(c);
    else
      pipe->Release(c);
    if (last) return Status::Ok();
  }
}

Status Run(int fd, ChunkPipe* pipe, const std::function<void(uint64_t)>& progress) {
  Source src{fd, &progress};
  ArchivePtr a = OpenFiltered(&src);
  if (archive_read_open1(a.get()) != ARCHIVE_OK) return ArchiveError(a.get(), "cannot open blob");
  archive_entry* entry;
  int r = archive_read_next_header(a.get(), &entry);
  if (r == ARCHIVE_EOF) return Status::Error(EINVAL, "empty blob");
  if (r < ARCHIVE_WARN) return ArchiveError(a.get(), "cannot read blob");
  return Pump(a.get(), pipe);
}

}  // namespace

void Decompress(int fd, ChunkPipe* pipe, const std::function<void(uint64_t)>& progress) {
  pipe->Close(Run(fd, pipe, progress));
}

}  // namespace layerfs
