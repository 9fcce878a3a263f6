// LayerStore: unpacks layer blobs into layers/<diff_id>/{tree,index}, once per diff_id.
//
// A layer is unpacked into tmp/ and renamed into place only when complete, so a layer
// directory is either whole or absent. The diff_id (sha256 of the uncompressed tar) is
// verified while unpacking. Unpacking never writes outside the layer's tree: names with "../"
// and hard links to outside are refused with an error naming the entry; absolute names and
// symlinked parent directories resolve inside the layer root, as containerd resolves them
// (tree_writer.h). Device nodes are created only when the process may (root); always indexed.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct LayerRequest {
  Digest blob;     // the compressed (or plain) blob in the blob store
  Digest diff_id;  // expected sha256 of the uncompressed tar
};

// Progress callback: (diff_id, bytes of compressed input consumed so far, total blob bytes).
using UnpackProgress = std::function<void(const Digest&, uint64_t, uint64_t)>;

class LayerStore {
 public:
  explicit LayerStore(const Store& store) : store_(&store) {}

  bool Has(const Digest& diff_id) const;
  // Unpacks what is missing, in parallel (TBB), each layer atomically. On any failure no new
  // layer directory from the failing layer is left behind; layers completed stay (they are
  // verified and reusable).
  Status Ensure(const std::vector<LayerRequest>& layers, const UnpackProgress& progress = {}) const;
  Result<LayerIndex> ReadIndex(const Digest& diff_id) const;
  // Bytes the layer's tree occupies on disk (st_blocks * 512 summed, hard links once).
  Result<uint64_t> DiskUsage(const Digest& diff_id) const;
  Status Remove(const Digest& diff_id) const;
  std::vector<Digest> List() const;

 private:
  const Store* store_;
};

}  // namespace layerfs
