// PushImage: `layerfs push`. Uploads a stored image to its registry: for each layer blob (in
// parallel, bounded) a HEAD first ("Layer already exists"), then a cross-repository mount from
// another repository of the same registry that a local image of that registry shares the blob
// with ("Mounted from X"), else an upload (one PUT up to the chunk size, PATCH chunks above).
// Then the config, then the manifest with its original bytes, so the registry serves the same
// manifest digest the store has and a pull elsewhere reproduces the image exactly. With
// `estargz`, what is pushed is the image converted to eStargz (a new OCI manifest and config).
#pragma once

#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/estargz/estargz_convert.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct PushOptions {
  size_t max_concurrent_uploads = 5;
  std::vector<std::string> insecure_registries;
  uint64_t chunk_size = 16u << 20;
  int max_attempts = 5;
  // Push an eStargz conversion of the image (estargz_convert.h) instead of the image itself.
  bool estargz = false;
  EstargzOptions estargz_options;
};

struct PushResult {
  Digest manifest_digest;
  uint64_t manifest_size = 0;
};

Result<PushResult> PushImage(const Store& store, const Reference& ref, const PushOptions& options,
                             const TransferCallback& progress);

}  // namespace layerfs
