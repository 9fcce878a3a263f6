#include "layerstore/lazy/lazy_layer.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "layerstore/base/parallel_jobs.h"
#include "layerstore/base/remove_tree.h"
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_toc.h"
#include "layerstore/layer/chunk_pipe.h"
#include "layerstore/layer/decompressor.h"
#include "layerstore/lazy/lazy_tree.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr uint32_t kNoFile = UINT32_MAX;

Result<Digest> TocDigestOf(const Descriptor& blob) {
  const nlohmann::json& a = blob.annotations;
  if (a.is_object() && a.contains(kEstargzTocDigestAnnotation) && a[kEstargzTocDigestAnnotation].is_string())
    if (auto d = Digest::Parse(a[kEstargzTocDigestAnnotation].get<std::string>()); d.ok()) return *d;
  return Status::Error(EINVAL, "layer " + blob.digest.str() + " is not eStargz (no valid " +
                                   kEstargzTocDigestAnnotation + " annotation)");
}

Status WriteAll(int fd, std::string_view bytes, uint64_t offset, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(what);
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ReadAt(int fd, uint64_t offset, uint64_t length, const std::string& what) {
  std::string out(length, '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : EIO, what);
    got += static_cast<size_t>(n);
  }
  return out;
}

// A file of the tree by its name in the TOC: parent symlinks resolve inside the tree, as the
// TreeWriter resolved them; the last component is never followed.
Result<UniqueFd> OpenInTree(int tree_fd, const std::string& name, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = ::syscall(SYS_openat2, tree_fd, name.c_str(), &how, sizeof how);
  if (fd < 0) return Status::FromErrno("open \"" + name + "\" in the lazy tree");
  return UniqueFd(static_cast<int>(fd));
}

// The sha256 of the blob's uncompressed tar: its diff_id.
Result<Digest> DiffIdOf(int fd) {
  if (::lseek(fd, 0, SEEK_SET) != 0) return Status::FromErrno("seek blob");
  ChunkPipe pipe(4, 1 << 20);
  std::thread producer(Decompress, fd, &pipe, std::function<void(uint64_t)>());
  Sha256 h;
  while (Chunk* c = pipe.Pop()) {
    h.Update(c->data.get(), c->size);
    pipe.Release(c);
  }
  producer.join();
  RETURN_IF_ERROR(pipe.status());
  return h.Finish();
}

nlohmann::json LayerJson(const Descriptor& blob, const Digest& diff_id, uint64_t toc_offset) {
  return {{"mediaType", blob.media_type}, {"digest", blob.digest.str()}, {"size", blob.size}, {"annotations", blob.annotations}, {"diffId", diff_id.str()}, {"tocOffset", toc_offset}};
}

}  // namespace

struct LazyLayer::File {
  std::string toc_name;  // opens it in the tree
  uint64_t size = 0;
  std::vector<uint32_t> chunks;  // in file order
  timespec times[2] = {};        // the tree's atime and mtime, put back after each write
  mode_t mode = 0;               // the tree's permission bits
};

struct LazyLayer::Chunk {
  EstargzChunk where;
  uint32_t file = kNoFile;  // kNoFile: data a later entry of the same name replaced
};

LazyLayer::LazyLayer(const Store& store, RegistryClient& client, std::string repo, Descriptor blob, Digest diff_id,
                     LazyLayerOptions options)
    : store_(store), client_(&client), repo_(std::move(repo)), blob_(std::move(blob)), diff_id_(std::move(diff_id)), options_(std::move(options)) {
  if (!options_.gate) options_.gate = std::make_shared<FetchGate>(options_.jobs);
}

LazyLayer::~LazyLayer() = default;

Result<std::unique_ptr<LazyLayer>> LazyLayer::Open(const Store& store, RegistryClient& client, const std::string& repo,
                                                   const Descriptor& blob, const Digest& diff_id,
                                                   LazyLayerOptions options) {
  ASSIGN_OR_RETURN(Digest toc_digest, TocDigestOf(blob));
  bool created = false;
  ASSIGN_OR_RETURN(LazyLayerLock lock, Own(store, client, repo, blob, diff_id, toc_digest, &created));
  std::unique_ptr<LazyLayer> layer(new LazyLayer(store, client, repo, blob, diff_id, std::move(options)));
  layer->lock_ = std::move(lock);
  RETURN_IF_ERROR(layer->Load(toc_digest).WithContext("lazy layer " + diff_id.str()));
  if (created) {  // the footer's and the TOC's requests
    layer->requests_ = 2;
    layer->fetched_ = blob.size - layer->toc_offset_;
  }
  return layer;
}

// lazy/<hex>, made if missing, with its lock held; looked at again when it went away between
// the look and the lock (a prune removed it, another process installed it).
Result<LazyLayerLock> LazyLayer::Own(const Store& store, RegistryClient& client, const std::string& repo,
                                     const Descriptor& blob, const Digest& diff_id, const Digest& toc_digest,
                                     bool* created) {
  for (int attempt = 1;; ++attempt) {
    if (LayerStore(store).Has(diff_id)) return Status::Error(EEXIST, "layer " + diff_id.str() + " is already pulled");
    struct stat st;
    *created = ::stat(store.lazy_layer_dir(diff_id).c_str(), &st) != 0;
    auto lock = *created ? Create(store, client, repo, blob, diff_id, toc_digest)
                         : LazyLayerLock::Acquire(store.lazy_layer_dir(diff_id), "layer " + diff_id.str());
    if (lock.ok() || attempt == 3 || (lock.status().code() != ENOENT && lock.status().code() != ESTALE)) return lock;
  }
}

// Footer, then TOC (two Range requests); the lock, tree, index, sparse blob and layer.json in
// tmp/, renamed to lazy/<hex> whole. ESTALE when another process made it first.
Result<LazyLayerLock> LazyLayer::Create(const Store& store, RegistryClient& client, const std::string& repo, const Descriptor& blob,
                                        const Digest& diff_id, const Digest& toc_digest) {
  const std::string name = "lazy layer " + diff_id.str();
  if (blob.size <= kEstargzFooterSize) return Status::Error(EINVAL, name + ": blob too small for eStargz");
  const uint64_t footer_at = blob.size - kEstargzFooterSize;
  ASSIGN_OR_RETURN(std::string footer, client.GetBlobRange(repo, blob.digest, footer_at, kEstargzFooterSize));
  auto toc_offset = ParseEstargzFooter(footer);
  if (!toc_offset.ok()) return toc_offset.status().WithContext(name);
  if (*toc_offset >= footer_at || footer_at - *toc_offset > kMaxEstargzTocSize)
    return Status::Error(EINVAL, name + ": the footer's TOC offset is out of range");
  ASSIGN_OR_RETURN(std::string member, client.GetBlobRange(repo, blob.digest, *toc_offset, footer_at - *toc_offset));
  auto toc = ReadEstargzToc(member, *toc_offset, toc_digest);
  if (!toc.ok()) return toc.status().WithContext(name);

  fs::path tmp = store.NewTempPath("lazy");
  LazyLayerLock lock;
  auto build = [&]() -> Status {
    if (::mkdir(tmp.c_str(), 0755) != 0 || ::mkdir((tmp / "tree").c_str(), 0755) != 0)
      return Status::FromErrno("create " + tmp.string());
    ASSIGN_OR_RETURN(lock, LazyLayerLock::Acquire(tmp, name));
    ASSIGN_OR_RETURN(LayerIndex index, BuildLazyTree(*toc, member, tmp / "tree"));
    RETURN_IF_ERROR(index.Write(tmp / "index"));
    UniqueFd fd(::open((tmp / "blob").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(blob.size)) != 0) return Status::FromErrno("blob file");
    RETURN_IF_ERROR(WriteAll(fd.get(), member, *toc_offset, "blob file"));
    RETURN_IF_ERROR(WriteAll(fd.get(), footer, footer_at, "blob file"));
    RETURN_IF_ERROR(WriteFileAtomicVia(tmp / "layer.json.tmp", tmp / "layer.json",
                                       LayerJson(blob, diff_id, *toc_offset).dump()));
    std::error_code ec;
    fs::create_directories(store.lazy_dir(), ec);
    if (::rename(tmp.c_str(), store.lazy_layer_dir(diff_id).c_str()) == 0) return Status::Ok();
    if (errno == EEXIST || errno == ENOTEMPTY) return Status::Error(ESTALE, "another process made it first");
    return Status::FromErrno("publish " + store.lazy_layer_dir(diff_id).string());
  };
  Status st = build();
  if (!st.ok()) {
    (void)RemoveTree(tmp);
    return st.WithContext(name);
  }
  return lock;
}

// Reads lazy/<hex> back: the descriptor must be this one and the TOC must check out again.
Status LazyLayer::Load(const Digest& toc_digest) {
  std::ifstream in(dir() / "layer.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json meta = nlohmann::json::parse(text.str(), nullptr, false);
  if (!meta.is_object() || meta.value("digest", "") != blob_.digest.str() || meta.value("size", uint64_t{0}) != blob_.size ||
      !meta["tocOffset"].is_number_unsigned())
    return Status::Error(EEXIST, dir().string() + " holds another blob of this layer, or is damaged");
  toc_offset_ = meta["tocOffset"].get<uint64_t>();
  if (toc_offset_ >= blob_.size - kEstargzFooterSize) return Status::Error(EINVAL, "bad tocOffset in layer.json");
  blob_fd_.Reset(::open((dir() / "blob").c_str(), O_RDWR | O_CLOEXEC));
  tree_fd_.Reset(::open((dir() / "tree").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!blob_fd_.valid() || !tree_fd_.valid()) return Status::FromErrno("open " + dir().string());
  uint64_t footer_at = blob_.size - kEstargzFooterSize;
  ASSIGN_OR_RETURN(std::string member, ReadAt(blob_fd_.get(), toc_offset_, footer_at - toc_offset_, "read TOC"));
  ASSIGN_OR_RETURN(EstargzToc toc, ReadEstargzToc(member, toc_offset_, toc_digest));
  ASSIGN_OR_RETURN(index_, LayerIndex::Read(dir() / "index"));
  RETURN_IF_ERROR(MapFiles(EstargzChunks(toc, toc_offset_)));
  // What no chunk holds: the first member's headers, data a later entry replaced.
  uint64_t at = 0;
  for (const Chunk& c : chunks_) {
    if (c.where.offset > at) gaps_.emplace_back(at, c.where.offset);
    at = std::max(at, c.where.end);
  }
  if (at < toc_offset_) gaps_.emplace_back(at, toc_offset_);
  std::lock_guard lk(mu_);
  ASSIGN_OR_RETURN(ChunkJournal journal, ChunkJournal::Open(dir() / "chunks", chunks_.size(), &verified_));
  journal_.emplace(std::move(journal));
  in_flight_.assign(chunks_.size(), false);
  return journal_->stale() ? Recheck() : Status::Ok();
}

// After a reboot: the chunks whose member (in the blob file) and data (in the tree) are still
// what their digest says stay verified; the others are fetched again when asked for.
Status LazyLayer::Recheck() {
  std::vector<uint32_t> good;
  for (uint32_t id = 0; id < chunks_.size(); ++id) {
    if (!verified_[id]) continue;
    const Chunk& c = chunks_[id];
    auto member = ReadAt(blob_fd_.get(), c.where.offset, c.where.end - c.where.offset, "read blob file");
    auto data = member.ok() ? ReadEstargzChunk(*member, c.where) : Result<std::string>(member.status());
    bool intact = data.ok();
    if (intact && c.file != kNoFile) {
      auto fd = OpenInTree(tree_fd_.get(), files_[c.file].toc_name, O_RDONLY);
      auto written = fd.ok() ? ReadAt(fd->get(), c.where.file_offset, c.where.length, "read tree")
                             : Result<std::string>(fd.status());
      intact = written.ok() && *written == *data;
    }
    if (intact) good.push_back(id);
    else
      verified_[id] = false;
  }
  return journal_->Rewrite(good);
}

// Chunks in blob order, each with the file it fills; index paths to files by inode, which
// covers hard links and names below symlinked parents alike.
Status LazyLayer::MapFiles(const std::map<std::string, std::vector<EstargzChunk>>& by_name) {
  std::unordered_map<ino_t, uint32_t> file_of_inode;
  for (const auto& [name, chunks] : by_name) {
    auto fd = OpenInTree(tree_fd_.get(), name, O_PATH);  // a 0000 file too, without root
    struct stat st;
    bool regular = fd.ok() && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode);
    auto file = static_cast<uint32_t>(files_.size());
    if (regular && file_of_inode.emplace(st.st_ino, file).second)
      files_.push_back(File{name, static_cast<uint64_t>(st.st_size), {}, {st.st_atim, st.st_mtim}, st.st_mode & 07777});
    for (const EstargzChunk& c : chunks) chunks_.push_back(Chunk{c, regular ? file_of_inode[st.st_ino] : kNoFile});
  }
  std::sort(chunks_.begin(), chunks_.end(), [](const Chunk& a, const Chunk& b) { return a.where.offset < b.where.offset; });
  for (uint32_t id = 0; id < chunks_.size(); ++id)
    if (chunks_[id].file != kNoFile) files_[chunks_[id].file].chunks.push_back(id);
  for (const LayerEntry& e : index_.entries()) {
    // The TOC's own file came whole with the TOC (lazy_tree.h).
    if (e.type != EntryType::kRegular || e.size == 0 || e.path == kEstargzTocName) continue;
    struct stat st;
    auto it = ::fstatat(tree_fd_.get(), e.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ? file_of_inode.find(st.st_ino)
                                                                                       : file_of_inode.end();
    if (it == file_of_inode.end()) return Status::Error(EINVAL, "the TOC has no data for \"" + e.path + "\"");
    file_of_.emplace(e.path, it->second);
  }
  return Status::Ok();
}

fs::path LazyLayer::tree_dir() const {
  std::lock_guard lk(mu_);
  return installed_ ? store_.layer_tree(diff_id_) : dir() / "tree";
}

LazyLayerStats LazyLayer::stats() const {
  LazyLayerStats s;
  s.chunks = chunks_.size();
  s.requests = requests_;
  s.fetched_bytes = fetched_;
  std::lock_guard lk(mu_);
  s.verified_chunks = static_cast<uint64_t>(std::count(verified_.begin(), verified_.end(), true));
  return s;
}

Status LazyLayer::EnsureRange(const std::string& path, uint64_t offset, uint64_t length) {
  auto it = file_of_.find(path);
  if (it == file_of_.end()) {
    auto& entries = index_.entries();
    auto e = std::lower_bound(entries.begin(), entries.end(), path,
                              [](const LayerEntry& x, const std::string& p) { return x.path < p; });
    if (e != entries.end() && e->path == path && e->type == EntryType::kRegular) return Status::Ok();  // no chunks
    return Status::Error(ENOENT, Name() + ": no regular file \"" + path + "\"");
  }
  const File& f = files_[it->second];
  uint64_t end = offset + std::min(length, f.size - std::min(offset, f.size));
  std::vector<uint32_t> ids;
  for (uint32_t id : f.chunks) {
    const EstargzChunk& c = chunks_[id].where;
    if (c.file_offset < end && c.file_offset + c.length > offset) ids.push_back(id);
  }
  Status st = Ensure(ids, Asker::kReader);
  return st.ok() ? st : st.WithContext(path);
}

// Claims the chunks nobody is fetching, fetches them, waits for the others; again if a chunk
// another thread was fetching failed there (this thread then tries it itself). The background
// takes its gate slot before it claims: a chunk it has claimed is one it is fetching, so a
// reader waiting for that chunk never waits behind the gate.
Status LazyLayer::Ensure(const std::vector<uint32_t>& ids, Asker asker) {
  for (;;) {
    std::optional<FetchGate::Background> slot;
    if (asker == Asker::kBackground && Claimable(ids)) slot.emplace(*options_.gate);
    bool others = false;
    std::vector<uint32_t> mine = Claim(ids, &others);
    RETURN_IF_ERROR(FetchClaimed(mine, asker));
    slot.reset();
    if (!mine.empty()) continue;
    if (!others) return Status::Ok();
    std::unique_lock lk(mu_);
    fetched_cv_.wait(lk, [&] { return std::none_of(ids.begin(), ids.end(), [&](uint32_t id) { return in_flight_[id]; }); });
  }
}

bool LazyLayer::Claimable(const std::vector<uint32_t>& ids) const {
  std::lock_guard lk(mu_);
  return std::any_of(ids.begin(), ids.end(), [&](uint32_t id) { return !verified_[id] && !in_flight_[id]; });
}

std::vector<uint32_t> LazyLayer::Claim(const std::vector<uint32_t>& ids, bool* others) {
  std::vector<uint32_t> mine;
  std::lock_guard lk(mu_);
  for (uint32_t id : ids) {
    if (verified_[id]) continue;
    if (in_flight_[id]) {
      *others = true;
      continue;
    }
    in_flight_[id] = true;
    mine.push_back(id);
  }
  return mine;
}

// Runs of claimed chunks whose members touch, each up to max_request: one Range request each.
// On a failure the chunks not yet fetched are released.
Status LazyLayer::FetchClaimed(const std::vector<uint32_t>& mine, Asker asker) {
  for (size_t i = 0; i < mine.size();) {
    std::vector<uint32_t> run = {mine[i]};
    uint64_t bytes = chunks_[mine[i]].where.end - chunks_[mine[i]].where.offset;
    for (++i; i < mine.size(); ++i) {
      const EstargzChunk& next = chunks_[mine[i]].where;
      if (next.offset != chunks_[run.back()].where.end || bytes + next.end - next.offset > options_.max_request) break;
      bytes += next.end - next.offset;
      run.push_back(mine[i]);
    }
    Status st = FetchRun(run, asker);
    if (!st.ok()) {
      Release(std::vector<uint32_t>(mine.begin() + static_cast<ptrdiff_t>(i), mine.end()), {});
      return st;
    }
  }
  return Status::Ok();
}

// A reader's request is counted at the gate for its duration (the background's slot is taken
// by Ensure or FetchGaps).
Result<std::string> LazyLayer::Fetch(uint64_t offset, uint64_t length, Asker asker) {
  std::optional<FetchGate::Reader> reader;
  if (asker == Asker::kReader) reader.emplace(*options_.gate);
  ++requests_;
  auto bytes = client_->GetBlobRange(repo_, blob_.digest, offset, length);
  if (!bytes.ok()) return Status::Error(EIO, Name() + ": " + bytes.status().message());
  fetched_ += bytes->size();
  return bytes;
}

// One Range request for the run; every chunk checked, then written, then journaled.
Status LazyLayer::FetchRun(const std::vector<uint32_t>& run, Asker asker) {
  const uint64_t first = chunks_[run.front()].where.offset;
  auto bytes = Fetch(first, chunks_[run.back()].where.end - first, asker);
  if (!bytes.ok()) {
    Release(run, {});
    return bytes.status();
  }
  std::vector<uint32_t> done;
  Status st;
  for (uint32_t id : run) {
    const Chunk& c = chunks_[id];
    std::string_view member = std::string_view(*bytes).substr(c.where.offset - first, c.where.end - c.where.offset);
    auto data = ReadEstargzChunk(member, c.where);
    if (!data.ok()) {
      std::string file = c.file == kNoFile ? "replaced data" : files_[c.file].toc_name;
      std::string line = Name() + ": " + file + ": refused: " + data.status().message();
      if (options_.log) options_.log(line);
      else
        std::fprintf(stderr, "layerfs: %s\n", line.c_str());
      st = Status::Error(EIO, line);
      break;
    }
    st = WriteChunk(c, *data, member);
    if (!st.ok()) break;
    done.push_back(id);
  }
  if (!done.empty()) {
    std::lock_guard lk(mu_);
    Status journaled = journal_->Append(done);
    if (!journaled.ok()) done.clear();
    if (st.ok()) st = journaled;
  }
  Release(run, done);
  return st;
}

// The chunk's data into its file, the member into the sparse blob.
Status LazyLayer::WriteChunk(const Chunk& chunk, const std::string& data, std::string_view member) {
  if (chunk.file != kNoFile) {
    const File& f = files_[chunk.file];
    ASSIGN_OR_RETURN(UniqueFd fd, OpenForWrite(f));
    RETURN_IF_ERROR(WriteAll(fd.get(), data, chunk.where.file_offset, Name() + ": write " + f.toc_name));
    if (::futimens(fd.get(), f.times) != 0)
      return Status::FromErrno(Name() + ": write " + f.toc_name);
  }
  return WriteAll(blob_fd_.get(), member, chunk.where.offset, Name() + ": write blob file");
}

// Without root, a file whose mode lacks the owner's write bit (0555 binaries, 0000 shadow
// files) gets it for the moment of the open, through its O_PATH descriptor: the index, not the
// tree, says what readers see, and the mode is the tree's again before a byte is written.
Result<UniqueFd> LazyLayer::OpenForWrite(const File& f) {
  auto fd = OpenInTree(tree_fd_.get(), f.toc_name, O_WRONLY);
  if (fd.ok() || fd.status().code() != EACCES) return fd;
  ASSIGN_OR_RETURN(UniqueFd path, OpenInTree(tree_fd_.get(), f.toc_name, O_PATH));
  std::string proc = "/proc/self/fd/" + std::to_string(path.get());
  if (::chmod(proc.c_str(), f.mode | S_IWUSR) != 0) return Status::FromErrno("chmod \"" + f.toc_name + "\"");
  UniqueFd out(::open(proc.c_str(), O_WRONLY | O_CLOEXEC));
  int err = errno;
  if (::chmod(proc.c_str(), f.mode) != 0) return Status::FromErrno("chmod \"" + f.toc_name + "\"");
  if (!out.valid()) return Status::FromErrno(err, "open \"" + f.toc_name + "\" in the lazy tree");
  return out;
}

void LazyLayer::Release(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& verified) {
  std::lock_guard lk(mu_);
  for (uint32_t id : verified) verified_[id] = true;
  for (uint32_t id : ids) in_flight_[id] = false;
  fetched_cv_.notify_all();
}

// The blob's bytes no chunk holds; the blob digest checks them.
Status LazyLayer::FetchGaps() {
  for (auto [from, to] : gaps_) {
    FetchGate::Background slot(*options_.gate);
    ASSIGN_OR_RETURN(std::string bytes, Fetch(from, to - from, Asker::kBackground));
    RETURN_IF_ERROR(WriteAll(blob_fd_.get(), bytes, from, Name() + ": write blob file"));
  }
  return Status::Ok();
}

Status LazyLayer::Complete(const LazyProgress& progress) {
  {
    std::lock_guard lk(mu_);
    if (installed_) return Status::Ok();
  }
  // Batches of about background_request bytes in blob order, taken in order by `jobs` threads.
  const uint64_t batch_bytes = std::min(options_.max_request, options_.background_request);
  std::vector<std::vector<uint32_t>> batches(1);
  uint64_t bytes = 0;
  for (uint32_t id = 0; id < chunks_.size(); ++id) {
    if (bytes >= batch_bytes) {
      batches.emplace_back();
      bytes = 0;
    }
    batches.back().push_back(id);
    bytes += chunks_[id].where.end - chunks_[id].where.offset;
  }
  std::atomic<uint64_t> done{blob_.size - toc_offset_};  // the TOC and the footer
  std::mutex error_mu;
  Status error;
  std::atomic<bool> failed{false};
  RunJobs(batches.size(), options_.jobs, [&](size_t i) {
    if (failed) return;  // a registry gone would otherwise cost every batch its retries
    Status st = Ensure(batches[i], Asker::kBackground);
    if (!st.ok()) {
      failed = true;
      std::lock_guard lk(error_mu);
      if (error.ok()) error = st;
      return;
    }
    uint64_t batch = 0;
    for (uint32_t id : batches[i]) batch += chunks_[id].where.end - chunks_[id].where.offset;
    uint64_t now = done += batch;
    if (progress) progress(now, blob_.size);
  });
  RETURN_IF_ERROR(error);
  RETURN_IF_ERROR(FetchGaps());
  if (progress) progress(blob_.size, blob_.size);
  return Install();
}

// The checks `layerfs pull` makes (blob digest, diff_id), then the tree and index become
// layers/<hex> and the blob goes to blobs/, under the store's shared lock as pull publishes
// (held for the install only: a background Complete must not keep `mount` or `tag`, which
// take the exclusive lock, waiting for the whole fetch).
Status LazyLayer::Install() {
  ASSIGN_OR_RETURN(StoreLock lock, store_.LockShared());
  // PutFile hashes the assembled blob while it copies it, and publishes it only if it matches
  // (a blob the store already has was verified when it came).
  auto put = BlobStore(store_).PutFile(dir() / "blob", blob_.digest);
  if (!put.ok()) return Status::Error(EIO, Name() + ": the assembled blob: " + put.status().message());
  UniqueFd stored(::open(store_.blob_path(blob_.digest).c_str(), O_RDONLY | O_CLOEXEC));
  if (!stored.valid()) return Status::FromErrno(Name() + ": blob " + blob_.digest.str());
  ASSIGN_OR_RETURN(Digest unpacked, DiffIdOf(stored.get()));
  if (unpacked != diff_id_)
    return Status::Error(EIO, Name() + ": diff_id mismatch (blob " + blob_.digest.str() + " unpacks to " +
                                  unpacked.str() + ")");
  // The whole directory moves (moving tree/ alone would need write permission on it, which a
  // 0555 layer root denies without root); a crash half way leaves litter in tmp/.
  fs::path tmp = store_.NewTempPath("layer");
  std::lock_guard lk(mu_);
  if (::rename(dir().c_str(), tmp.c_str()) != 0) return Status::FromErrno(Name() + ": install");
  for (const char* name : {"blob", "chunks", "chunks.boot", "layer.json", "lock"}) ::unlink((tmp / name).c_str());
  if (::rename(tmp.c_str(), store_.layer_dir(diff_id_).c_str()) != 0) {
    if (errno != EEXIST && errno != ENOTEMPTY) return Status::FromErrno(Name() + ": install");
    (void)RemoveTree(tmp);  // another process installed it first: theirs is as verified
  }
  installed_ = true;
  return Status::Ok();
}

}  // namespace layerfs
