// FetchLayer: brings one layer of an image being pulled into the store, streaming.
//
// The blob's bytes go, as they arrive, both into a BlobWriter (hashing them) and into a FIFO
// under tmp/ that UnpackLayer reads on its own thread, so unpacking overlaps the download.
// The blob and the layer directory are published only once both digests are right: the
// blob's sha256 (BlobWriter::Commit) and the uncompressed tar's (the diff_id); until then
// everything lives in tmp/ and any failure removes it.
//
// A layer whose directory and blob are both in the store is not fetched ("Already exists");
// one with only the blob is unpacked from it; one with only the directory gets its blob.
#pragma once

#include <atomic>
#include <string>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/oci/image.h"
#include "layerstore/registry/registry_client.h"
#include "layerstore/store/store.h"

namespace layerfs {

// cancel: set by another layer's failure; the transfer stops soon after with ECANCELED.
Status FetchLayer(const Store& store, RegistryClient& client, const std::string& repo, const Descriptor& blob,
                  const Digest& diff_id, const std::atomic<bool>& cancel, const TransferCallback& progress);

}  // namespace layerfs
