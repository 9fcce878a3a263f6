// UnpackLayer: a two-thread pipeline. A helper thread reads the blob and decompresses it into
// big chunks (decompressor.h); this thread hashes the uncompressed bytes (the diff_id), parses
// them with libarchive's tar reader and writes the tree (tree_writer.h).
#include "layerstore/layer/layer_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <thread>

#include "layerstore/base/remove_tree.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/layer/chunk_pipe.h"
#include "layerstore/layer/decompressor.h"
#include "layerstore/layer/tree_writer.h"

namespace layerfs {

namespace {

constexpr size_t kChunks = 6;
constexpr size_t kChunkSize = 1 << 20;

// Feeds pipe chunks to libarchive, hashing every byte it hands over.
struct TarFeed {
  explicit TarFeed(ChunkPipe* p) : pipe(p) {}
  ChunkPipe* pipe;
  Chunk* current = nullptr;
  Sha256 hash;

  // Next chunk, or nullptr at the end (or on a producer error: see pipe->status()).
  Chunk* Next() {
    if (current) pipe->Release(current);
    current = pipe->Pop();
    if (current) hash.Update(current->data.get(), current->size);
    return current;
  }
};

la_ssize_t ReadChunk(archive* a, void* opaque, const void** out) {
  auto* feed = static_cast<TarFeed*>(opaque);
  Chunk* c = feed->Next();
  if (c == nullptr) {
    Status st = feed->pipe->status();
    if (st.ok()) return 0;
    archive_set_error(a, st.code(), "%s", st.message().c_str());
    return ARCHIVE_FATAL;
  }
  *out = c->data.get();
  return static_cast<la_ssize_t>(c->size);
}

Status ReaderError(archive* a, ChunkPipe* pipe, bool first) {
  if (Status st = pipe->status(); !st.ok()) return st;  // e.g. "truncated gzip input"
  const char* msg = archive_error_string(a);
  std::string text = msg ? msg : "cannot read tar stream";
  if (first) text = "not a tar archive (" + text + ")";
  return Status::Error(archive_errno(a) > 0 ? archive_errno(a) : EINVAL, text);
}

Status ExtractEntries(TarFeed* feed, TreeWriter* writer) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open(a.get(), feed, nullptr, ReadChunk, nullptr) != ARCHIVE_OK)
    return ReaderError(a.get(), feed->pipe, true);
  archive_entry* e;
  for (bool first = true;; first = false) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) return Status::Ok();
    if (r < ARCHIVE_WARN) return ReaderError(a.get(), feed->pipe, first);
    RETURN_IF_ERROR(writer->Add(a.get(), e));
  }
}

// After the tar end marker: the rest of the stream (padding) still belongs to the diff_id.
Status DrainAndCheck(TarFeed* feed) {
  while (feed->Next() != nullptr) {
  }
  return feed->pipe->status();
}

Result<Digest> Extract(int blob_fd, int tree_fd, LayerIndex* index, const std::function<void(uint64_t)>& progress) {
  ChunkPipe pipe(kChunks, kChunkSize);
  std::thread producer(Decompress, blob_fd, &pipe, progress);
  TarFeed feed(&pipe);
  TreeWriter writer(tree_fd, index);
  Status st = ExtractEntries(&feed, &writer);
  if (st.ok()) st = DrainAndCheck(&feed);
  pipe.Cancel();
  producer.join();
  if (st.ok()) st = writer.Finish();
  if (!st.ok()) return st;
  return feed.hash.Finish();
}

// "layer sha256:<hex>" when the blob lives in the blob store, else the file's path.
std::string LayerName(const std::filesystem::path& blob) {
  auto d = Digest::Parse("sha256:" + blob.filename().string());
  return d.ok() ? "layer " + d->str() : "layer " + blob.string();
}

}  // namespace

Result<Digest> UnpackLayer(const std::filesystem::path& blob, const std::filesystem::path& tree_dir,
                           LayerIndex* index, const std::function<void(uint64_t)>& progress) {
  std::string what = LayerName(blob);
  UniqueFd blob_fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!blob_fd.valid()) return Status::FromErrno(what);
  UniqueFd tree_fd(::open(tree_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!tree_fd.valid()) return Status::FromErrno(what + ": tree " + tree_dir.string());
  auto digest = Extract(blob_fd.get(), tree_fd.get(), index, progress);
  if (digest.ok()) return digest;
  // Leave nothing behind: an empty tree and an empty index, as we found them.
  ::fchmod(tree_fd.get(), 0755);  // a "./" entry may have made the root read-only
  (void)RemoveTreeContents(tree_fd.get(), tree_dir.string());
  index->entries().clear();
  return digest.status().WithContext(what);
}

}  // namespace layerfs
