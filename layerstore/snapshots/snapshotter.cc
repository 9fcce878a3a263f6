#include "layerstore/snapshots/snapshotter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <set>
#include <utility>

#include "layerstore/base/failpoint.h"
#include "layerstore/base/remove_tree.h"
#include "layerstore/oci/image.h"
#include "layerstore/snapshots/snapshot_filter.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_holds.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCatalogFile = "metadata.json";
constexpr const char* kEmptyDir = "empty";  // the lower of a snapshot without parents
constexpr const char* kHolder = "containerd-snapshotter";

// containerd's unpacker names its snapshots "extract-<unique> <chain id>"; its metadata layer
// puts "<namespace>/<sequence>/" in front.
bool IsUnpackKey(const std::string& key) {
  size_t slash = key.rfind('/', key.find(' '));
  std::string base = slash == std::string::npos ? key : key.substr(slash + 1);
  return base.rfind("extract-", 0) == 0;
}

Status MakeDir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + p.string());
  return Status::Ok();
}

std::optional<uint64_t> IdOf(const std::string& name) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || end != name.data() + name.size() || name.empty()) return std::nullopt;
  return id;
}

// "<file>.tmp-<pid>" of a process that is gone.
bool IsDeadStaging(const std::string& name) {
  size_t at = name.find(".tmp-");
  if (at == std::string::npos) return false;
  std::optional<uint64_t> pid = IdOf(name.substr(at + 5));
  return pid && ::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH;
}

// The diff_ids (bottom first) of the first store image whose layer chain has `chain` as a
// prefix, ending at the layer that makes it; empty when no image has it.
Result<std::vector<Digest>> StoreChain(const Store& store, const Digest& chain) {
  ASSIGN_OR_RETURN(std::vector<Image> images, ImageStore(store).List());
  for (const Image& image : images) {
    std::vector<Digest> prefix;
    for (const Digest& d : image.diff_ids) {
      prefix.push_back(d);
      if (ChainId(prefix) == chain) return prefix;
    }
  }
  return std::vector<Digest>();
}

}  // namespace

Result<std::unique_ptr<Snapshotter>> Snapshotter::Open(const Store& store) {
  fs::path dir = store.root() / "snapshots";
  std::error_code ec;
  fs::create_directories(dir / kEmptyDir, ec);
  if (ec) return Status::Error(ec.value(), "create " + dir.string() + ": " + ec.message());
  UniqueFd lock(::open((dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid()) return Status::FromErrno("open " + (dir / "lock").string());
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Status::Error(EBUSY, "another snapshotter uses " + dir.string());
  ASSIGN_OR_RETURN(SnapshotCatalog catalog, SnapshotCatalog::Open(dir / kCatalogFile));
  std::unique_ptr<Snapshotter> s(new Snapshotter(store, std::move(lock), std::move(catalog)));
  RETURN_IF_ERROR(s->Cleanup());
  return s;
}

Result<std::vector<SnapshotMount>> Snapshotter::Create(SnapshotKind kind, const std::string& key,
                                                       const std::string& parent, const Labels& labels) {
  std::lock_guard lock(mu_);
  // The directory is made first, under the id the record will get: a crash in between leaves a
  // directory no record names, which Cleanup removes, never a record without its directory.
  fs::path sdir = SnapshotDir(catalog_.NextId());
  RETURN_IF_ERROR(RemoveTree(sdir));  // a leftover of a crash at this very step
  RETURN_IF_ERROR(MakeDir(sdir));
  RETURN_IF_ERROR(MakeDir(sdir / "fs"));
  RETURN_IF_ERROR(MakeDir(sdir / "work"));
  auto r = catalog_.Create(kind, key, parent, labels);
  if (!r.ok()) {
    (void)RemoveTree(sdir);
    return r.status();
  }
  return MountsOf(*r);
}

Result<std::vector<SnapshotMount>> Snapshotter::Prepare(const std::string& key, const std::string& parent,
                                                        const Labels& labels) {
  if (labels.count(kTargetLabel)) {
    ASSIGN_OR_RETURN(bool adopted, AdoptStoreLayer(key, parent, labels));
    if (adopted) return Status::Error(EEXIST, "target snapshot " + labels.at(kTargetLabel) + " is a layer of the layerfs store");
  }
  return Create(SnapshotKind::kActive, key, parent, labels);
}

Result<bool> Snapshotter::AdoptStoreLayer(const std::string& key, const std::string& parent, const Labels& labels) {
  RETURN_IF_ERROR(ValidateName(key));
  const std::string& target = labels.at(kTargetLabel);
  auto chain_id = Digest::Parse(target);
  if (!chain_id.ok()) return false;
  // Held from the check that the layer is there to the hold on it: no rmi or prune between.
  ASSIGN_OR_RETURN(StoreLock store_lock, store_.LockShared());
  ASSIGN_OR_RETURN(std::vector<Digest> chain, StoreChain(store_, *chain_id));
  if (chain.empty() || !LayerStore(store_).Has(chain.back()) || parent.empty() != (chain.size() == 1)) return false;
  std::lock_guard lock(mu_);
  if (!parent.empty()) {
    // containerd asks on the snapshot it committed for the chain below; one made otherwise
    // (another image's layer under the same name) would stack the wrong files.
    ASSIGN_OR_RETURN(SnapshotRecord p, catalog_.Get(parent));
    Digest below = ChainId({chain.begin(), chain.end() - 1});
    auto ref = p.info.labels.find(kTargetLabel);
    if (ref != p.info.labels.end() && ref->second != below.str()) return false;
    if (!p.layer.empty() && p.layer != chain[chain.size() - 2]) return false;
  }
  for (const SnapshotRecord& r : catalog_.List()) {
    auto ref = r.info.labels.find(kTargetLabel);
    if (r.info.kind == SnapshotKind::kCommitted && r.info.parent == parent && ref != r.info.labels.end() &&
        ref->second == target)
      return true;
  }
  // Named by the chain ID, as containerd names what it commits; made unique if another
  // namespace's snapshot took that name on another parent.
  std::string name = catalog_.Get(target).ok() ? target + "@" + std::to_string(catalog_.NextId()) : target;
  Labels own = labels;
  own["containerd.io/snapshot/layerfs.layer"] = chain.back().str();
  ASSIGN_OR_RETURN(SnapshotRecord adopted, catalog_.Adopt(name, parent, own, chain.back()));
  if (Status st = HoldStoreLayers(); !st.ok()) {
    (void)catalog_.Remove(adopted.info.name);
    return st;
  }
  return true;
}

Result<std::vector<SnapshotMount>> Snapshotter::View(const std::string& key, const std::string& parent,
                                                     const Labels& labels) {
  return Create(SnapshotKind::kView, key, parent, labels);
}

Result<std::vector<SnapshotMount>> Snapshotter::Mounts(const std::string& key) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(SnapshotRecord r, catalog_.Get(key));
  if (r.info.kind == SnapshotKind::kCommitted)
    return Status::Error(EBUSY, "snapshot " + key + " is committed: only active snapshots and views have mounts");
  return MountsOf(r);
}

fs::path Snapshotter::FilesOf(const SnapshotRecord& r) const {
  return r.layer.empty() ? SnapshotDir(r.id) / "fs" : store_.layer_tree(r.layer);
}

Result<std::vector<SnapshotMount>> Snapshotter::MountsOf(const SnapshotRecord& r) const {
  ASSIGN_OR_RETURN(std::vector<SnapshotRecord> parents, catalog_.Parents(r.info.name));
  std::string lower;
  bool store_lowers = false;
  for (const SnapshotRecord& parent : parents) {
    lower += (lower.empty() ? "" : ":") + FilesOf(parent).string();
    store_lowers |= !parent.layer.empty();
  }
  if (lower.empty()) lower = (dir_ / kEmptyDir).string();
  fs::path own = SnapshotDir(r.id);
  std::string upper = "upperdir=" + (own / "fs").string();
  std::string work = "workdir=" + (own / "work").string();
  // containerd's applier writes into the upper and reads the lowers only for the attributes
  // of directories it must make: plain directories are enough for that.
  if (r.info.kind == SnapshotKind::kActive && IsUnpackKey(r.info.name))
    return std::vector<SnapshotMount>{{"overlay", "overlay", {work, upper, "lowerdir=" + lower}}};
  // A store layer's tree holds no whiteouts: its index does, which `store=` makes the mount read.
  std::string options = "lowerdir=" + lower + (store_lowers ? ",store=" + store_.root().string() : "");
  if (r.info.kind == SnapshotKind::kActive) options += "," + upper + "," + work;
  return std::vector<SnapshotMount>{{"fuse3.layerfs-overlay", "layerfs", {options}}};
}

Status Snapshotter::Commit(const std::string& name, const std::string& key, const Labels& labels) {
  std::lock_guard lock(mu_);
  Failpoint("snapshotter-commit");  // tests/snapshotter: killed while containerd unpacks a layer
  return catalog_.Commit(name, key, labels).status();
}

Status Snapshotter::Remove(const std::string& key) {
  std::lock_guard lock(mu_);
  // The record goes first: a crash before the directory is gone leaves litter for Cleanup.
  ASSIGN_OR_RETURN(SnapshotRecord r, catalog_.Remove(key));
  if (!r.layer.empty()) return HoldStoreLayers();
  return RemoveTree(SnapshotDir(r.id));
}

Result<SnapshotInfo> Snapshotter::Stat(const std::string& key) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(SnapshotRecord r, catalog_.Get(key));
  return r.info;
}

Result<SnapshotInfo> Snapshotter::Update(const SnapshotInfo& info, const std::vector<std::string>& paths) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(SnapshotRecord r, catalog_.Update(info, paths));
  return r.info;
}

Result<std::vector<SnapshotInfo>> Snapshotter::List(const std::vector<std::string>& filters) {
  ASSIGN_OR_RETURN(SnapshotFilter filter, SnapshotFilter::Parse(filters));
  std::lock_guard lock(mu_);
  std::vector<SnapshotInfo> out;
  for (auto& r : catalog_.List())
    if (filter.Matches(r.info)) out.push_back(std::move(r.info));
  return out;
}

Result<SnapshotUsage> Snapshotter::Usage(const std::string& key) {
  fs::path root;
  {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(SnapshotRecord r, catalog_.Get(key));
    root = FilesOf(r);
  }
  SnapshotUsage u;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::error_code ec;
  auto add = [&](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !seen.insert({st.st_dev, st.st_ino}).second) return;
    u.size += static_cast<int64_t>(st.st_blocks) * 512;
    ++u.inodes;
  };
  add(root);
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) add(it->path());
  if (ec) return Status::Error(ec.value(), "usage of " + key + ": " + ec.message());
  return u;
}

Status Snapshotter::Cleanup() {
  std::lock_guard lock(mu_);
  return CleanupLocked();
}

Status Snapshotter::CleanupLocked() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    std::optional<uint64_t> id = IdOf(name);
    if ((id && !catalog_.HasId(*id)) || IsDeadStaging(name)) RETURN_IF_ERROR(RemoveTree(e.path()));
  }
  if (ec) return Status::Error(ec.value(), "cleanup " + dir_.string() + ": " + ec.message());
  return HoldStoreLayers();
}

Status Snapshotter::HoldStoreLayers() const {
  HeldLayers held;
  for (const SnapshotRecord& r : catalog_.List()) {
    if (r.layer.empty()) continue;
    held.diff_ids.insert(r.layer);
    // A stack of store layers only is mounted from the store's chain index: keep that too.
    auto parents = catalog_.Parents(r.info.name);
    if (!parents.ok()) continue;
    std::vector<Digest> chain{r.layer};
    bool all_store = true;
    for (const SnapshotRecord& parent : *parents) {
      all_store &= !parent.layer.empty();
      chain.insert(chain.begin(), parent.layer);
    }
    if (all_store) held.chains.insert(ChainId(chain));
  }
  return LayerHolds(store_).Set(kHolder, held);
}

}  // namespace layerfs
