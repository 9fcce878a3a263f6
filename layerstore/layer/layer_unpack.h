// UnpackLayer: one layer's tar stream into a directory tree and its index, below the store:
// LayerStore, import, load and pull each call it on a staging directory of their own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/layer/layer_index.h"

namespace layerfs {

// Unpacks one tar stream (gzip, zstd or plain, detected from the bytes) from `blob` into
// `tree_dir` (which must exist and be empty), filling `index`, and returns the sha256 of the
// uncompressed tar (the diff_id).
Result<Digest> UnpackLayer(const std::filesystem::path& blob, const std::filesystem::path& tree_dir,
                           LayerIndex* index, const std::function<void(uint64_t)>& progress = {});

}  // namespace layerfs
