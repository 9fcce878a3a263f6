// BuildCache: what each build step produced, keyed by everything the step's result depends on,
// kept under <root>/buildcache/<key hex>.json so it survives between builds.
//
// Key (StepKey) = sha256 over: the parent's state (the config digest of the image the step
// builds on; it covers the layers so far and Env/WorkingDir/User/Shell), the instruction text
// after substitution, and for COPY/ADD a hash of every copied file's bytes and metadata. A
// record holds the step's resulting image (manifest, config) and its layer, if it made one;
// those blobs/layers stay in the store, used by the cache even when no image uses them.
//
// Prune removes records and then every blob and layer that no image, container or remaining
// record uses; it never touches what an image uses. All mutations hold the store's writer lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct CacheRecord {
  Digest key;
  std::string instruction;  // after substitution, for people reading the records
  Descriptor manifest;      // the step's resulting image
  Digest layer_blob;        // empty for metadata-only steps
  Digest diff_id;
  int64_t created_unix = 0;
};

// The key of one step. parent: the config digest of the image the step starts from (empty for
// `FROM scratch` before any step). content: "" or the COPY/ADD content hash.
Digest StepKey(const Digest& parent, std::string_view instruction, std::string_view content);

class BuildCache {
 public:
  explicit BuildCache(const Store& store) : store_(&store) {}

  // A record whose manifest, config and layer (if any) are all still in the store; records
  // whose data is gone are treated as misses.
  Result<std::optional<CacheRecord>> Lookup(const Digest& key) const;
  Status Put(const CacheRecord& record) const;
  Status Remove(const Digest& key) const;
  std::vector<CacheRecord> List() const;

  // `system df` "Build Cache": records (TOTAL), records whose layers are a prefix of some
  // image's layers (ACTIVE), bytes held only by the cache (SIZE = RECLAIMABLE: blobs and layer
  // trees that no image or container uses).
  struct Usage {
    size_t records = 0;
    size_t active = 0;
    uint64_t size = 0;
    uint64_t reclaimable = 0;
  };
  Result<Usage> DiskUsage() const;

  // all: every record; otherwise only records not active (see Usage). Returns bytes freed and
  // the number of records removed.
  struct PruneReport {
    size_t records = 0;
    uint64_t bytes = 0;
  };
  Result<PruneReport> Prune(bool all) const;

  // Deletes those of the given blobs and layers that no image, container or cache record uses,
  // and the given merged-index caches (chain IDs) that no image or container uses; returns the
  // bytes freed. Prune and a failed
  // build's clean-up both end here. Takes the writer lock unless `locked`.
  struct Candidates {
    std::vector<Digest> blobs;
    std::vector<Digest> diff_ids;
    std::vector<Digest> chains;
  };
  Result<uint64_t> RemoveUnreferenced(const Candidates& candidates, bool locked = false) const;

 private:
  fs::path RecordPath(const Digest& key) const;
  const Store* store_;
};

}  // namespace layerfs
