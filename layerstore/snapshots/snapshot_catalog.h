// SnapshotCatalog: the records of `layerfs snapshotter` (containerd's snapshots), in the style of
// containerd's snapshots/storage: each snapshot has a key (active, view) or name (committed), a
// parent that must be committed, a kind, labels and times, and a numeric id that names its
// directory. Keys come from containerd and never become paths, so a hostile key cannot reach
// outside the store; they are still held to containerd's own limits (ValidateName).
// Every change is written to one JSON file through a temporary file, fsync and rename: after a
// crash the file holds the state before or after the change, never a half-made one. Not
// thread-safe: the snapshotter serialises calls.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

enum class SnapshotKind { kView = 1,
                          kActive = 2,
                          kCommitted = 3 };

struct SnapshotInfo {
  std::string name;  // the key of an active or view snapshot, the name of a committed one
  std::string parent;
  SnapshotKind kind = SnapshotKind::kActive;
  int64_t created_ns = 0;  // since the epoch, UTC
  int64_t updated_ns = 0;
  std::map<std::string, std::string> labels;
};

struct SnapshotRecord {
  uint64_t id = 0;
  SnapshotInfo info;
  Digest layer;  // committed from the store: layers/<layer> holds its files (no directory of its own)
};

// EINVAL unless `name` is a usable key: 1..kMaxNameBytes bytes, no NUL or control characters,
// not absolute and no "." or ".." component. '/' is allowed: containerd's metadata layer names
// every key "<namespace>/<sequence>/<key>".
Status ValidateName(const std::string& name);
// EINVAL unless every label has a non-empty key, no NUL, and key + value <= 4096 bytes
// (containerd's limit), and there are at most kMaxLabels.
Status ValidateLabels(const std::map<std::string, std::string>& labels);

class SnapshotCatalog {
 public:
  static constexpr size_t kMaxNameBytes = 1024;
  static constexpr size_t kMaxLabels = 256;

  // Loads `file` (missing: an empty catalog); EINVAL when it is not a catalog.
  static Result<SnapshotCatalog> Open(const std::filesystem::path& file);

  // A new active or view snapshot on `parent` (empty: none). EEXIST for a key in use, ENOENT
  // for a missing parent, EINVAL for a parent that is not committed or a bad key or label.
  Result<SnapshotRecord> Create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                const std::map<std::string, std::string>& labels);
  // The active snapshot `key` becomes the committed `name` (same id and directory), with
  // `labels`. ENOENT, EEXIST for a name in use, EBUSY (FailedPrecondition) when not active.
  Result<SnapshotRecord> Commit(const std::string& name, const std::string& key,
                                const std::map<std::string, std::string>& labels);
  // A committed snapshot `name` on `parent` whose files are the store layer `layer`. Errors as
  // Create's.
  Result<SnapshotRecord> Adopt(const std::string& name, const std::string& parent,
                               const std::map<std::string, std::string>& labels, const Digest& layer);
  // Drops the record; EBUSY when another snapshot has it as parent.
  Result<SnapshotRecord> Remove(const std::string& key);
  // Labels only: `paths` empty or "labels" replaces them all, "labels.K" sets or drops K;
  // anything else is EINVAL (name, parent, kind and times are immutable).
  Result<SnapshotRecord> Update(const SnapshotInfo& info, const std::vector<std::string>& paths);

  Result<SnapshotRecord> Get(const std::string& key) const;
  // `key`'s parents, nearest first; EIO when the chain is broken or loops.
  Result<std::vector<SnapshotRecord>> Parents(const std::string& key) const;
  std::vector<SnapshotRecord> List() const;
  bool HasId(uint64_t id) const;
  // The id the next Create will give (its directory may be made before the record).
  uint64_t NextId() const { return next_id_; }

 private:
  explicit SnapshotCatalog(std::filesystem::path file) : file_(std::move(file)) {}
  Status Save() const;
  Status CheckNew(const std::string& key, const std::string& parent,
                  const std::map<std::string, std::string>& labels) const;
  Result<SnapshotRecord> Insert(SnapshotRecord r);  // gives it the next id and the times
  const SnapshotRecord* Find(const std::string& key) const;

  std::filesystem::path file_;
  uint64_t next_id_ = 1;
  std::map<std::string, SnapshotRecord> records_;  // by key or name
};

}  // namespace layerfs
