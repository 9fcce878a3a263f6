#include "layerstore/store/store_gc.h"

#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <ctime>
#include <fstream>
#include <iterator>

#include "layerstore/base/remove_tree.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/build_cache.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_holds.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/lazy_layer_lock.h"

namespace layerfs {

namespace {

constexpr const char* kJournalName = "published.json";

void AddImage(LiveSet* live, const Image& image) {
  for (const auto& b : image.blobs()) live->blobs.insert(b);
  std::vector<Digest> prefix;
  for (const auto& d : image.diff_ids) {
    live->diff_ids.insert(d);
    prefix.push_back(d);
    live->chains.insert(ChainId(prefix));
  }
}

Descriptor ManifestOf(const Digest& d) { return {kOciManifestType, d, 0, nlohmann::json(), nlohmann::json()}; }

thread_local uint64_t tl_bytes;
thread_local std::set<std::pair<dev_t, ino_t>>* tl_seen;

int CountAllocated(const char*, const struct stat* st, int, FTW*) {
  if (tl_seen->insert({st->st_dev, st->st_ino}).second) tl_bytes += static_cast<uint64_t>(st->st_blocks) * 512;
  return 0;
}

// Modified (or renamed into place: ctime) at least min_age ago.
bool OldEnough(const fs::path& p, std::chrono::seconds min_age, std::time_t now) {
  if (min_age.count() <= 0) return true;
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return false;
  return now - std::max(st.st_mtime, st.st_ctime) >= min_age.count();
}

std::vector<std::pair<Digest, fs::path>> DigestDirEntries(const fs::path& dir) {
  std::vector<std::pair<Digest, fs::path>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto d = Digest::Parse("sha256:" + e.path().filename().string());
    if (d.ok()) out.emplace_back(*d, e.path());
  }
  return out;
}

// Renamed into tmp/ first, so a crash half way leaves litter, never half a layer or chain.
Status RemoveViaTmp(const Store& store, const fs::path& path) {
  fs::path tmp = store.NewTempPath("gc");
  if (::rename(path.c_str(), tmp.c_str()) != 0)
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("remove " + path.string());
  return RemoveTree(tmp);
}

Status SweepDir(const Store& store, const fs::path& dir, const std::set<Digest>& live, std::chrono::seconds min_age,
                size_t* count, SweepReport* r, std::set<std::pair<dev_t, ino_t>>* seen) {
  std::time_t now = std::time(nullptr);
  for (const auto& [digest, path] : DigestDirEntries(dir)) {
    if (live.count(digest) || !OldEnough(path, min_age, now)) continue;
    uint64_t bytes = AllocatedBytes(path, seen);
    RETURN_IF_ERROR(RemoveViaTmp(store, path));
    r->bytes += bytes;
    ++*count;
  }
  return Status::Ok();
}

Status SweepDeadLitter(const Store& store, SweepReport* r, std::set<std::pair<dev_t, ino_t>>* seen) {
  std::error_code ec;
  std::vector<fs::path> dead;
  for (const auto& e : fs::directory_iterator(store.tmp_dir(), ec))
    if (IsDeadLitter(e.path().filename().string())) dead.push_back(e.path());
  for (const fs::path& p : dead) {
    uint64_t bytes = AllocatedBytes(p, seen);
    RETURN_IF_ERROR(RemoveTree(p));
    r->bytes += bytes;
    ++r->tmp_entries;
  }
  return Status::Ok();
}

Result<PublishJournal> ReadJournal(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(bytes, file.string()));
  PublishJournal journal;
  auto digests = [&](const char* field, std::vector<Digest>* out) -> Status {
    if (!j.contains(field) || !j[field].is_array()) return Status::Error(EINVAL, file.string() + ": no " + field);
    for (const auto& v : j[field]) {
      if (!v.is_string()) return Status::Error(EINVAL, file.string() + ": bad digest");
      ASSIGN_OR_RETURN(Digest d, Digest::Parse(v.get<std::string>()));
      out->push_back(d);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(digests("blobs", &journal.blobs));
  RETURN_IF_ERROR(digests("diff_ids", &journal.diff_ids));
  return journal;
}

}  // namespace

Result<LiveSet> ComputeLiveSet(const Store& store) {
  LiveSet live;
  ImageStore images(store);
  ASSIGN_OR_RETURN(std::vector<Image> list, images.List());
  for (const Image& image : list) AddImage(&live, image);
  for (const ContainerRecord& c : ContainerStore(store).List()) {
    if (c.manifest_digest.empty()) continue;
    auto image = images.LoadImage(ManifestOf(c.manifest_digest));
    if (!image.ok()) return image.status().WithContext("container " + c.name);
    AddImage(&live, *image);
  }
  for (const CacheRecord& r : BuildCache(store).List()) {
    live.blobs.insert(r.manifest.digest);
    if (!r.layer_blob.empty()) live.blobs.insert(r.layer_blob);
    if (!r.diff_id.empty()) live.diff_ids.insert(r.diff_id);
    auto image = images.LoadImage(r.manifest);
    if (image.ok()) AddImage(&live, *image);
  }
  ASSIGN_OR_RETURN(HeldLayers held, LayerHolds(store).All());
  live.diff_ids.insert(held.diff_ids.begin(), held.diff_ids.end());
  live.chains.insert(held.chains.begin(), held.chains.end());
  return live;
}

bool PartialLayerNeeded(const Store& store, const std::set<Digest>& live_diff_ids, const Digest& diff_id) {
  return live_diff_ids.count(diff_id) > 0 && !LayerStore(store).Has(diff_id);
}

Status WritePublishJournal(const fs::path& staging_dir, const PublishJournal& journal) {
  nlohmann::json j = {{"blobs", nlohmann::json::array()}, {"diff_ids", nlohmann::json::array()}};
  for (const Digest& d : journal.blobs) j["blobs"].push_back(d.str());
  for (const Digest& d : journal.diff_ids) j["diff_ids"].push_back(d.str());
  return WriteFileAtomicVia(staging_dir / (std::string(kJournalName) + ".part"), staging_dir / kJournalName, j.dump());
}

Result<SweepReport> SweepUnreferenced(const Store& store, std::chrono::seconds min_age) {
  ASSIGN_OR_RETURN(LiveSet live, ComputeLiveSet(store));
  SweepReport r;
  std::set<std::pair<dev_t, ino_t>> seen;
  RETURN_IF_ERROR(SweepDir(store, store.blobs_dir(), live.blobs, min_age, &r.blobs, &r, &seen));
  RETURN_IF_ERROR(SweepDir(store, store.layers_dir(), live.diff_ids, min_age, &r.layers, &r, &seen));
  RETURN_IF_ERROR(SweepDir(store, store.chains_dir(), live.chains, min_age, &r.chains, &r, &seen));
  RETURN_IF_ERROR(SweepDeadLitter(store, &r, &seen));
  return r;
}

Result<SweepReport> SweepUnownedPartialLayers(const Store& store) {
  ASSIGN_OR_RETURN(LiveSet live, ComputeLiveSet(store));
  SweepReport r;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const auto& [digest, path] : DigestDirEntries(store.lazy_dir())) {
    if (PartialLayerNeeded(store, live.diff_ids, digest)) continue;
    auto lock = LazyLayerLock::Acquire(path, "layer " + digest.str());
    int code = lock.status().code();
    if (code == EBUSY || code == ENOENT || code == ESTALE) continue;  // being pulled, or gone meanwhile
    if (!lock.ok()) return lock.status();
    uint64_t bytes = AllocatedBytes(path, &seen);
    RETURN_IF_ERROR(RemoveViaTmp(store, path));
    r.bytes += bytes;
    r.partial_layers.push_back(digest);
  }
  return r;
}

// "<prefix>-<pid>-<n>-<random>": the pid is the third field from the end.
bool IsDeadLitter(const std::string& name) {
  size_t last = name.rfind('-');
  size_t mid = last == std::string::npos || last == 0 ? std::string::npos : name.rfind('-', last - 1);
  size_t first = mid == std::string::npos || mid == 0 ? std::string::npos : name.rfind('-', mid - 1);
  if (first == std::string::npos) return true;
  int pid = 0;
  const char* begin = name.data() + first + 1;
  const char* end = name.data() + mid;
  auto [ptr, ec] = std::from_chars(begin, end, pid);
  if (ec != std::errc() || ptr != end || pid <= 0) return true;
  if (pid == ::getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

Result<SweepReport> RecoverInterruptedWrites(const Store& store) {
  SweepReport r;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::error_code ec;
  PublishJournal orphans;
  for (const auto& e : fs::directory_iterator(store.tmp_dir(), ec)) {
    fs::path journal = e.path() / kJournalName;
    if (!IsDeadLitter(e.path().filename().string()) || !fs::exists(journal, ec)) continue;
    ASSIGN_OR_RETURN(PublishJournal j, ReadJournal(journal));
    orphans.blobs.insert(orphans.blobs.end(), j.blobs.begin(), j.blobs.end());
    orphans.diff_ids.insert(orphans.diff_ids.end(), j.diff_ids.begin(), j.diff_ids.end());
  }
  if (!orphans.blobs.empty() || !orphans.diff_ids.empty()) {
    // Without a live set nothing is deleted and the journals stay for the next run.
    ASSIGN_OR_RETURN(LiveSet live, ComputeLiveSet(store));
    BlobStore blobs(store);
    for (const Digest& d : orphans.blobs) {
      if (live.blobs.count(d) || !blobs.Has(d)) continue;
      uint64_t bytes = AllocatedBytes(blobs.Path(d), &seen);
      RETURN_IF_ERROR(blobs.Remove(d));
      r.bytes += bytes;
      ++r.blobs;
    }
    for (const Digest& d : orphans.diff_ids) {
      if (live.diff_ids.count(d) || !fs::exists(store.layer_dir(d), ec)) continue;
      uint64_t bytes = AllocatedBytes(store.layer_dir(d), &seen);
      RETURN_IF_ERROR(RemoveViaTmp(store, store.layer_dir(d)));
      r.bytes += bytes;
      ++r.layers;
    }
  }
  RETURN_IF_ERROR(SweepDeadLitter(store, &r, &seen));
  return r;
}

uint64_t AllocatedBytes(const fs::path& path, std::set<std::pair<dev_t, ino_t>>* seen) {
  tl_bytes = 0;
  tl_seen = seen;
  ::nftw(path.c_str(), CountAllocated, 32, FTW_PHYS);
  tl_seen = nullptr;
  return tl_bytes;
}

}  // namespace layerfs
