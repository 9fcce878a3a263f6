// Converting a stored image to eStargz, for `push --estargz` and `save --estargz`. Each layer
// blob is rewritten as an eStargz blob (estargz_writer.h) in the blob store; a new OCI config
// (same config, the new diff_ids) and OCI manifest (layers annotated with their TOC digest)
// join it. The stored image and its tags are untouched; the result is an untagged image whose
// blobs are in the store, for the caller to push or save while it holds the store's lock.
//
// Prefetch: paths listed in `prefetch` (a run's read-first files, "/usr/bin/python3" or
// "usr/bin/python3") that a layer holds as regular files go first in that layer, after the
// directories above them, then `.prefetch.landmark`; every other entry follows in its original
// order. A layer holding none of them starts with `.no.prefetch.landmark`. Layers that are
// already eStargz (their descriptor carries the TOC digest annotation) are kept as they are.
#pragma once

#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/estargz/estargz_writer.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct EstargzOptions {
  std::vector<std::string> prefetch;
  uint64_t chunk_size = kEstargzDefaultChunkSize;
};

// Reads a prefetch list: one path per line, blank lines and lines starting with '#' skipped.
Result<std::vector<std::string>> ReadPrefetchList(const fs::path& file);

Result<EstargzBlob> ConvertLayerToEstargz(const Store& store, const Descriptor& layer, const EstargzOptions& options);
// progress (may be empty) hears "Converting to eStargz" and "Converted" for each layer, by the
// short id of its original diff_id.
Result<Image> ConvertImageToEstargz(const Store& store, const Image& image, const EstargzOptions& options,
                                    const TransferCallback& progress);

}  // namespace layerfs
