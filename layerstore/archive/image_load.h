// LoadImages: `layerfs load`. Reads a docker-archive (old layout: manifest.json + repositories
// + <id>/layer.tar; or Docker 25+'s layout with index.json + blobs/), an oci-archive (a tar of
// an OCI layout) or an OCI layout directory, detected from its content; tar inputs may be
// gzip/xz/zstd compressed.
//
// All or nothing: while holding the store's exclusive lock, every blob is copied into tmp/ and
// verified (digest and size), layers missing from the store are unpacked there in parallel and
// their diff_ids checked; only then are blobs and layers renamed into place and index.json
// rewritten, last. Any failure leaves the store as it was; a crash between the renames and
// index.json leaves a journal that the next run uses to delete what was published (store_gc.h). Blobs and layers already present
// are reused, so loading the same archive twice adds nothing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct LoadOptions {
  std::string platform;  // "os/arch[/variant]" for manifest lists; empty: linux/amd64
  // Load only the image the archive names so (its tag, "redis:7" or "latest" as written in
  // an OCI layout's ref.name); empty: every image in the archive.
  std::string only_ref;
  // Per layer being unpacked ("Loading layer" with compressed bytes read / blob size, then
  // "Loaded"; "Already exists" for a layer the store has). Called from unpacking threads.
  TransferCallback progress;
};

struct LoadedImage {
  Image image;
  std::vector<std::string> refs;  // normalized tags given to it (empty: untagged)
};

struct LoadReport {
  std::vector<LoadedImage> images;
  uint64_t new_blob_bytes = 0;
  size_t new_layers = 0;
};

Result<LoadReport> LoadImages(const Store& store, const std::filesystem::path& input, const LoadOptions& options);

}  // namespace layerfs
