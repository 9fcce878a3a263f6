// CommitLayer: a container's upper dir as one OCI layer, streamed once: the tar goes through
// gzip into a BlobWriter while the sha256 of the uncompressed tar (the diff_id) is computed.
//   whiteout (0/0 char device or ".wh.NAME")  -> empty file ".wh.NAME"
//   opaque directory                          -> the directory, then "DIR/.wh..wh..opq"
//   renamed lower directory (redirect)        -> an opaque directory with its whole merged
//                                                 contents (lower entries read from the layers)
//   user.containers.override_stat             -> the tar header's uid, gid and mode
//   hard links inside the upper               -> tar hard links
//   xattrs: user.*, trusted.*, security.capability; the store's private ones never
// Order is deterministic (depth first, names in byte order; no padding beyond the tar end),
// so the same upper gives the same diff_id. Sockets are skipped (tar cannot hold them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "fs/index/merged_index.h"
#include "layerstore/base/digest.h"
#include "layerstore/store/blob_store.h"

namespace layerfs {

struct CommittedLayer {
  Digest diff_id;
  uint64_t tar_bytes = 0;  // uncompressed
  uint64_t entries = 0;
};

// image: the merged index of the container's image; layer_trees: the unpacked tree of each of
// its layers, bottom first (same order as the index's layer numbers). `out` is not committed.
Result<CommittedLayer> WriteCommitLayer(const std::filesystem::path& upper_dir, const MergedIndex& image,
                                        const std::vector<std::filesystem::path>& layer_trees, BlobWriter* out);

}  // namespace layerfs
