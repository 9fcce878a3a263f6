// ChainView: read-only lookups of single paths in the merged view of a chain of layers, from the
// per-layer indexes (whiteouts and opaque directories applied), and reads of small files from
// the layer trees. The builder uses it to read /etc/passwd and /etc/group of the image it builds
// on and to learn whether a COPY destination is an existing directory; the mount uses its own
// merged index.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/layer/layer_index.h"
#include "layerstore/store/store.h"

namespace layerfs {

class ChainView {
 public:
  // diff_ids bottom first; every layer must be unpacked in the store.
  static Result<ChainView> Open(const Store& store, const std::vector<Digest>& diff_ids);

  struct Found {
    LayerEntry entry;
    Digest diff_id;  // the layer that provides it
  };
  // path: relative, no leading '/' ("etc/passwd"); "" is the root.
  std::optional<Found> Lookup(std::string_view path) const;
  // The content of a regular file; ENOENT when absent or not a regular file.
  Result<std::string> ReadFile(std::string_view path) const;

 private:
  const Store* store_ = nullptr;
  std::vector<Digest> diff_ids_;
  std::vector<LayerIndex> indexes_;  // same order as diff_ids_
};

}  // namespace layerfs
