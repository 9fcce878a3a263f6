#include "layerstore/store/layer_store.h"

#include <ftw.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include <tbb/parallel_for_each.h>

#include "layerstore/base/remove_tree.h"
#include "layerstore/layer/layer_unpack.h"

namespace layerfs {

namespace {

std::string LayerName(const Digest& diff_id) { return "layer " + diff_id.str(); }

std::vector<LayerRequest> Missing(const LayerStore& ls, const std::vector<LayerRequest>& layers) {
  std::vector<LayerRequest> out;
  std::unordered_set<Digest> seen;
  for (const LayerRequest& r : layers)
    if (seen.insert(r.diff_id).second && !ls.Has(r.diff_id)) out.push_back(r);
  return out;
}

Status Publish(const fs::path& tmp, const fs::path& dest, const Digest& diff_id) {
  if (::rename(tmp.c_str(), dest.c_str()) == 0) return Status::Ok();
  // ENOTEMPTY/EEXIST: another process published the same layer first; it is verified, use it.
  int err = errno;
  (void)RemoveTree(tmp);
  if (err == ENOTEMPTY || err == EEXIST) return Status::Ok();
  return Status::FromErrno(err, LayerName(diff_id) + ": publish");
}

// Unpacks into tmp/ as <tmp>/{tree,index}, verifies the diff_id, renames to layers/<hex>.
Status UnpackInto(const Store& store, const LayerRequest& req, const fs::path& tmp, const UnpackProgress& progress) {
  fs::path blob = store.blob_path(req.blob);
  struct stat st;
  if (::stat(blob.c_str(), &st) != 0)
    return Status::FromErrno(LayerName(req.diff_id) + ": blob " + req.blob.str());
  if (::mkdir(tmp.c_str(), 0755) != 0 || ::mkdir((tmp / "tree").c_str(), 0755) != 0)
    return Status::FromErrno(LayerName(req.diff_id) + ": create " + tmp.string());
  auto total = static_cast<uint64_t>(st.st_size);
  auto report = [&](uint64_t done) {
    if (progress) progress(req.diff_id, done, total);
  };
  LayerIndex index;
  ASSIGN_OR_RETURN(Digest got, UnpackLayer(blob, tmp / "tree", &index, report));
  if (got != req.diff_id)
    return Status::Error(EINVAL, LayerName(req.diff_id) + ": diff_id mismatch (blob " + req.blob.str() +
                                     " unpacks to " + got.str() + ")");
  RETURN_IF_ERROR(index.Write(tmp / "index").WithContext(LayerName(req.diff_id)));
  return Publish(tmp, store.layer_dir(req.diff_id), req.diff_id);
}

Status EnsureOne(const Store& store, const LayerRequest& req, const UnpackProgress& progress) {
  fs::path tmp = store.NewTempPath("layer");
  Status st = UnpackInto(store, req, tmp, progress);
  if (!st.ok()) (void)RemoveTree(tmp);
  return st;
}

thread_local uint64_t tl_usage;
thread_local std::set<std::pair<dev_t, ino_t>>* tl_seen;

int CountBlocks(const char*, const struct stat* st, int, FTW*) {
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode) && !tl_seen->insert({st->st_dev, st->st_ino}).second) return 0;
  tl_usage += static_cast<uint64_t>(st->st_blocks) * 512;
  return 0;
}

}  // namespace

bool LayerStore::Has(const Digest& diff_id) const {
  struct stat st;
  return ::stat(store_->layer_index_path(diff_id).c_str(), &st) == 0;
}

// Each layer unpacks on a TBB worker (plus its own decompression thread); `progress` is called
// from those threads, concurrently for different layers.
Status LayerStore::Ensure(const std::vector<LayerRequest>& layers, const UnpackProgress& progress) const {
  std::vector<LayerRequest> todo = Missing(*this, layers);
  std::vector<Status> results(todo.size());
  std::vector<size_t> order(todo.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  tbb::parallel_for_each(order.begin(), order.end(),
                         [&](size_t i) { results[i] = EnsureOne(*store_, todo[i], progress); });
  for (const Status& st : results)
    if (!st.ok()) return st;
  return Status::Ok();
}

Result<LayerIndex> LayerStore::ReadIndex(const Digest& diff_id) const {
  auto index = LayerIndex::Read(store_->layer_index_path(diff_id));
  if (!index.ok()) return index.status().WithContext(LayerName(diff_id));
  return index;
}

Result<uint64_t> LayerStore::DiskUsage(const Digest& diff_id) const {
  std::set<std::pair<dev_t, ino_t>> seen;
  tl_usage = 0;
  tl_seen = &seen;
  fs::path tree = store_->layer_tree(diff_id);
  int r = ::nftw(tree.c_str(), CountBlocks, 32, FTW_PHYS);
  tl_seen = nullptr;
  if (r != 0) return Status::FromErrno(LayerName(diff_id) + ": disk usage of " + tree.string());
  return tl_usage;
}

// Renamed into tmp/ first: a crash half way through the delete leaves litter, never a half layer.
Status LayerStore::Remove(const Digest& diff_id) const {
  fs::path tmp = store_->NewTempPath("rm-layer");
  if (::rename(store_->layer_dir(diff_id).c_str(), tmp.c_str()) != 0) {
    if (errno == ENOENT) return Status::Error(ENOENT, LayerName(diff_id) + ": not in the store");
    return Status::FromErrno(LayerName(diff_id) + ": remove");
  }
  return RemoveTree(tmp).WithContext(LayerName(diff_id));
}

std::vector<Digest> LayerStore::List() const {
  std::vector<Digest> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store_->layers_dir(), ec)) {
    auto d = Digest::Parse("sha256:" + e.path().filename().string());
    if (d.ok() && Has(*d)) out.push_back(*d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace layerfs
