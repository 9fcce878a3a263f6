// Store-wide garbage collection: what `system prune` removes beyond images and build cache, and
// what the next run recovers after a crash.
//
// Live = used by an image record (index.json), a container, or a build cache record: their
// manifest, config and layer blobs, their layers (diff_ids), and the merged-index caches of
// every prefix of their layer chains; and what a holder holds (layer_holds.h). Everything else under blobs/, layers/ and chains/ is
// unreferenced. Writers such as commit and pull publish a blob before the record that uses it,
// without the exclusive lock, so the sweep leaves alone anything younger than `min_age`.
//
// tmp/ entries are named <prefix>-<pid>-<n>-<random> (Store::NewTempPath): an entry is litter
// once its process is gone. A `load` killed after publishing blobs and layers but before
// rewriting index.json leaves its staging directory with a journal of what it published; the
// next Store::Open (RecoverInterruptedWrites) deletes those of them nothing uses.
// All functions here need the caller to hold the store's exclusive lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct LiveSet {
  std::set<Digest> blobs;
  std::set<Digest> diff_ids;
  std::set<Digest> chains;
};
Result<LiveSet> ComputeLiveSet(const Store& store);

// What a writer published ahead of its record, kept in its tmp/ staging dir until the record
// is written (then the staging dir goes, journal and all).
struct PublishJournal {
  std::vector<Digest> blobs;
  std::vector<Digest> diff_ids;
};
Status WritePublishJournal(const std::filesystem::path& staging_dir, const PublishJournal& journal);

struct SweepReport {
  size_t blobs = 0, layers = 0, chains = 0, tmp_entries = 0;
  std::vector<Digest> partial_layers;  // lazy/<hex> removed (diff_ids)
  uint64_t bytes = 0;                  // allocated bytes freed (st_blocks, hard links once)
};

// Deletes unreferenced blobs, layers and chains at least min_age old, and tmp/ litter.
Result<SweepReport> SweepUnreferenced(const Store& store, std::chrono::seconds min_age);

// Whether a partial layer (lazy/<hex>) is one a container's image still needs: a remount of
// the container resumes it. Not once the layer is ordinary (the directory is a leftover then).
bool PartialLayerNeeded(const Store& store, const std::set<Digest>& live_diff_ids, const Digest& diff_id);

// Deletes the lazy/<hex> directories no process owns (LazyLayerLock: each is removed with its
// lock held) and no container needs, leaving those being pulled. What they verified is lost:
// `system prune -a` only.
Result<SweepReport> SweepUnownedPartialLayers(const Store& store);

// True for a tmp/ entry whose process is gone (or whose name carries no pid).
bool IsDeadLitter(const std::string& tmp_entry_name);

// Deletes what dead writers' journals list and nothing uses, then the dead writers' tmp/ litter.
Result<SweepReport> RecoverInterruptedWrites(const Store& store);

// Allocated bytes (st_blocks * 512) below path, each inode once across calls with the same set.
uint64_t AllocatedBytes(const std::filesystem::path& path, std::set<std::pair<dev_t, ino_t>>* seen);

}  // namespace layerfs
