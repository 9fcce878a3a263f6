#include "layerstore/build/chain_view.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

const LayerEntry* Find(const LayerIndex& index, std::string_view path) {
  const auto& entries = index.entries();
  auto it = std::lower_bound(entries.begin(), entries.end(), path,
                             [](const LayerEntry& e, std::string_view p) { return e.path < p; });
  return it != entries.end() && it->path == path ? &*it : nullptr;
}

// True when a proper ancestor of path is, in this layer, a whiteout, an opaque directory or a
// non-directory: lower layers cannot show path then.
bool HidesBelow(const LayerIndex& index, std::string_view path) {
  for (size_t slash = path.find('/'); slash != std::string_view::npos; slash = path.find('/', slash + 1)) {
    const LayerEntry* a = Find(index, path.substr(0, slash));
    if (a && (a->type != EntryType::kDirectory || a->opaque)) return true;
  }
  const LayerEntry* root = path.empty() ? nullptr : Find(index, "");
  return root && root->opaque;
}

}  // namespace

Result<ChainView> ChainView::Open(const Store& store, const std::vector<Digest>& diff_ids) {
  ChainView view;
  view.store_ = &store;
  view.diff_ids_ = diff_ids;
  LayerStore layers(store);
  for (const Digest& d : diff_ids) {
    ASSIGN_OR_RETURN(LayerIndex index, layers.ReadIndex(d));
    view.indexes_.push_back(std::move(index));
  }
  return view;
}

std::optional<ChainView::Found> ChainView::Lookup(std::string_view path) const {
  for (size_t i = indexes_.size(); i-- > 0;) {
    if (const LayerEntry* e = Find(indexes_[i], path)) {
      if (e->type == EntryType::kWhiteout) return std::nullopt;
      return Found{*e, diff_ids_[i]};
    }
    if (HidesBelow(indexes_[i], path)) return std::nullopt;
  }
  return std::nullopt;
}

Result<std::string> ChainView::ReadFile(std::string_view path) const {
  auto found = Lookup(path);
  if (!found || found->entry.type != EntryType::kRegular)
    return Status::Error(ENOENT, "/" + std::string(path) + ": no such file in the image");
  std::ifstream in(store_->layer_tree(found->diff_id) / std::string(path), std::ios::binary);
  if (!in) return Status::FromErrno("read /" + std::string(path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace layerfs
