// EstargzWriter: writes one eStargz layer (stargz-snapshotter docs/estargz.md) into the blob
// store from tar entries given in the order they should appear: every non-empty regular file's
// data starts a new gzip member (and another every chunk_size bytes), the TOC
// (stargz.index.json) is the last tar entry in a member of its own, and the 51-byte footer
// names the TOC's offset. The blob is still one valid tar.gz: Docker, containerd and `tar -xzf`
// unpack it as any other layer. Destroying an unfinished writer leaves nothing behind.
#pragma once

#include <cstdint>
#include <memory>

#include "layerstore/base/status.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

struct archive;
struct archive_entry;

namespace layerfs {

inline constexpr uint64_t kEstargzDefaultChunkSize = 4u << 20;  // stargz-snapshotter's default

struct EstargzBlob {
  Descriptor blob;  // gzip media type, with the TOC digest and uncompressed size annotations
  Digest diff_id;
  Digest toc_digest;
};

class EstargzWriter {
 public:
  static Result<std::unique_ptr<EstargzWriter>> Create(const Store& store, uint64_t chunk_size);
  ~EstargzWriter();

  // Copies one entry read from `in` (header `e`, data read from `in`) with its metadata.
  Status AddArchiveEntry(archive* in, archive_entry* e);
  // The landmark that ends the prioritized files (prefetch) or says there are none.
  Status AddLandmark(bool prefetch);
  // Writes the TOC and the footer and publishes the blob. The writer is spent afterwards.
  Result<EstargzBlob> Finish(const std::string& media_type);

 private:
  struct Impl;
  explicit EstargzWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace layerfs
