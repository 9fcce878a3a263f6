// LayerTarWriter: writes one layer (a tar stream, gzip-compressed) straight into the blob store
// and computes its diff_id (sha256 of the uncompressed tar) in the same pass. Entries carry the
// metadata given, not the writer's: owners and modes need no root. Used by the builder for
// COPY/ADD layers. Destroying an unfinished writer leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "layerstore/base/status.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

struct archive;
struct archive_entry;

namespace layerfs {

struct LayerBlob {
  Descriptor blob;  // gzip media type, digest and size of the compressed blob
  Digest diff_id;
};

struct TarEntryMeta {
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  long mtime_nsec = 0;
};

class LayerTarWriter {
 public:
  static Result<std::unique_ptr<LayerTarWriter>> Create(const Store& store);
  ~LayerTarWriter();

  // path: relative to the layer root ("usr/bin/x"), no leading '/'.
  Status AddDirectory(const std::string& path, const TarEntryMeta& meta);
  Status AddFile(const std::string& path, const TarEntryMeta& meta, const std::filesystem::path& source);
  Status AddSymlink(const std::string& path, const TarEntryMeta& meta, const std::string& target);
  // Copies one entry read from `in` (its header `e`; data read from `in`) to `path`; its own
  // metadata is kept. hardlink: the layer path of the entry it links to, or "".
  Status AddArchiveEntry(archive* in, archive_entry* e, const std::string& path, const std::string& hardlink);
  // Publishes the blob. The writer is spent afterwards.
  Result<LayerBlob> Finish();

 private:
  struct Impl;
  explicit LayerTarWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace layerfs
