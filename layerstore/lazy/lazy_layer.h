// LazyLayer: one eStargz layer of an image, pulled lazily (docs/lazy-pull.md). Open() fetches
// only the footer and the TOC (two Range requests), checks the TOC against the descriptor's
// TOC digest annotation, and builds the layer's index and a tree whose regular files are holes
// of their size (lazy_tree.h). EnsureRange() fills what a reader needs of a file: the chunks
// not yet present, adjacent ones coalesced into one Range request, each checked against its
// TOC digest before a byte of it is written. Complete() fetches the rest, checks the whole
// blob's digest and the diff_id as `layerfs pull` does, and installs the layer as an ordinary
// layers/<diff_id> (and its blob in blobs/), under the store's shared lock for the install only.
//
// On disk: <store>/lazy/<diff_id hex>/, not tmp/ (tmp/ is swept once its writer dies, and what
// a killed process verified must stay): tree/, index, layer.json (the descriptor and the TOC's
// offset), blob (sparse: the blob's bytes fetched so far, at their offsets, for Complete to
// hash) and chunks (chunk_journal.h). It is made in tmp/ and renamed into place whole; a later
// Open() reads it back, checking the TOC again, without the network.
//
// Threads: EnsureRange() and Complete() may run on many threads at once; each chunk is fetched
// by one of them while the others wait for it. The registry client must outlive the layer.
// One process owns a lazy layer (LazyLayerLock, held from Open to destruction): Open in
// another process meanwhile fails with EBUSY. Errors a reader sees are EIO (registry gone
// after the client's bounded retries, a chunk refused), ENOENT (no such regular file).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "layerstore/base/unique_fd.h"
#include "layerstore/estargz/estargz_reader.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/lazy/chunk_journal.h"
#include "layerstore/lazy/fetch_gate.h"
#include "layerstore/oci/image.h"
#include "layerstore/registry/registry_client.h"
#include "layerstore/store/lazy_layer_lock.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct LazyLayerOptions {
  uint64_t max_request = 8u << 20;  // a coalesced Range request grows up to this
  // Complete's requests: small enough that the first ones (the prefetch files) are not slowed
  // by the `jobs - 1` fetched beside them; large enough to keep the link busy between them.
  uint64_t background_request = 2u << 20;
  unsigned jobs = 3;                            // Complete's requests at once (pull's default)
  std::function<void(const std::string&)> log;  // one line per refused chunk; empty: stderr
  // Shared by the layers of one image (fetch_gate.h); null: the layer makes its own of `jobs`.
  std::shared_ptr<FetchGate> gate;
};

struct LazyLayerStats {
  uint64_t chunks = 0;
  uint64_t verified_chunks = 0;
  uint64_t requests = 0;       // Range requests this object sent (Open's two when it fetched the TOC)
  uint64_t fetched_bytes = 0;  // of the blob, by those requests
};

// done and total: bytes of the blob present (verified) and its size. Called from Complete's
// fetching threads, several at once.
using LazyProgress = std::function<void(uint64_t done, uint64_t total)>;

class LazyLayer {
 public:
  // blob: the manifest's layer descriptor, with the TOC digest annotation; diff_id: the
  // config's. EEXIST when the layer is already an ordinary layer of the store, EBUSY while
  // another process owns it (the message names its pid).
  static Result<std::unique_ptr<LazyLayer>> Open(const Store& store, RegistryClient& client, const std::string& repo,
                                                 const Descriptor& blob, const Digest& diff_id,
                                                 LazyLayerOptions options = {});
  ~LazyLayer();

  const LayerIndex& index() const { return index_; }
  // lazy/<hex>/tree, or layers/<hex>/tree once Complete() installed it (files opened before
  // stay valid: the tree is renamed, not copied).
  fs::path tree_dir() const;
  // path: a regular file's path in index(). Returns once bytes [offset, offset + length) of it
  // (clipped to its size) are verified in the tree.
  Status EnsureRange(const std::string& path, uint64_t offset, uint64_t length);
  // Every missing chunk (blob order, which puts the prefetch landmark's files first; `jobs`
  // Range requests at once), then the whole blob's checks and the install. Readers may go on
  // calling EnsureRange meanwhile.
  Status Complete(const LazyProgress& progress = {});
  LazyLayerStats stats() const;
  // After a fork: names this process as the owner in the lock file (LazyLayerLock).
  void RecordOwnerPid() { lock_.RecordPid(); }

 private:
  struct File;
  struct Chunk;
  LazyLayer(const Store& store, RegistryClient& client, std::string repo, Descriptor blob, Digest diff_id,
            LazyLayerOptions options);
  static Result<LazyLayerLock> Own(const Store& store, RegistryClient& client, const std::string& repo,
                                   const Descriptor& blob, const Digest& diff_id, const Digest& toc_digest,
                                   bool* created);
  static Result<LazyLayerLock> Create(const Store& store, RegistryClient& client, const std::string& repo,
                                      const Descriptor& blob, const Digest& diff_id, const Digest& toc_digest);
  Status Load(const Digest& toc_digest);
  Status Recheck();
  Status MapFiles(const std::map<std::string, std::vector<EstargzChunk>>& by_name);
  enum class Asker { kReader,
                     kBackground };  // whose wait a request is (fetch_gate.h)
  Status Ensure(const std::vector<uint32_t>& ids, Asker asker);
  bool Claimable(const std::vector<uint32_t>& ids) const;
  std::vector<uint32_t> Claim(const std::vector<uint32_t>& ids, bool* others);
  Status FetchClaimed(const std::vector<uint32_t>& mine, Asker asker);
  Status FetchRun(const std::vector<uint32_t>& run, Asker asker);
  Status WriteChunk(const Chunk& chunk, const std::string& data, std::string_view member);
  Result<UniqueFd> OpenForWrite(const File& f);
  void Release(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& verified);
  Result<std::string> Fetch(uint64_t offset, uint64_t length, Asker asker);
  Status FetchGaps();
  Status Install();
  fs::path dir() const { return store_.lazy_layer_dir(diff_id_); }
  std::string Name() const { return "layer " + diff_id_.str(); }

  Store store_;
  RegistryClient* client_;
  std::string repo_;
  Descriptor blob_;
  Digest diff_id_;
  LazyLayerOptions options_;
  LazyLayerLock lock_;
  uint64_t toc_offset_ = 0;
  LayerIndex index_;
  std::vector<File> files_;
  std::vector<Chunk> chunks_;                          // by offset in the blob
  std::unordered_map<std::string, uint32_t> file_of_;  // index path -> files_
  std::vector<std::pair<uint64_t, uint64_t>> gaps_;    // blob ranges no chunk holds
  UniqueFd tree_fd_;
  UniqueFd blob_fd_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> fetched_{0};

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable fetched_cv_;
  std::vector<bool> verified_;
  std::vector<bool> in_flight_;
  std::optional<ChunkJournal> journal_;
  bool installed_ = false;
};

}  // namespace layerfs
