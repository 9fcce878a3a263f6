// EstargzToc: the table of contents of an eStargz layer (stargz-snapshotter docs/estargz.md):
// the JSON document `stargz.index.json`, the last tar entry of the layer, with one entry per
// tar entry and one per chunk of a regular file's data. Parsing is for untrusted input: every
// name is a clean relative path, every number in range, every chunk of a file follows its
// `reg` entry with consecutive chunkOffsets and an offset into the blob before the TOC.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

inline constexpr const char* kEstargzTocName = "stargz.index.json";
inline constexpr const char* kEstargzPrefetchLandmark = ".prefetch.landmark";
inline constexpr const char* kEstargzNoPrefetchLandmark = ".no.prefetch.landmark";
// Layer descriptor annotations: the TOC JSON's digest (what makes the TOC, and through its
// chunkDigests every chunk, verifiable from the manifest) and the uncompressed tar's size.
inline constexpr const char* kEstargzTocDigestAnnotation = "containerd.io/snapshot/stargz/toc.digest";
inline constexpr const char* kEstargzUncompressedSizeAnnotation = "io.containers.estargz.uncompressed-size";

struct EstargzTocEntry {
  std::string name;  // as stored in the tar ("./usr/bin/", "etc/passwd"); see CleanName
  std::string type;  // dir reg symlink hardlink char block fifo chunk
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  std::string link_name;
  uint32_t mode = 0;  // st_mode: permission bits, and the type bits where the writer set them
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string user_name;
  std::string group_name;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::map<std::string, std::string> xattrs;  // raw values (base64 in the JSON)
  std::string digest;                         // of the whole file ("sha256:..."), reg only
  uint64_t offset = 0;                        // of the gzip member holding this chunk's data
  uint64_t inner_offset = 0;                  // of the data within that member's output
  uint64_t chunk_offset = 0;                  // of this chunk within the file
  uint64_t chunk_size = 0;                    // 0: up to the end of the file
  std::string chunk_digest;

  bool HasData() const { return (type == "reg" && size > 0) || type == "chunk"; }
};

struct EstargzToc {
  std::vector<EstargzTocEntry> entries;
};

// The name without "./" or "/" in front and "/" behind ("./usr/bin/" -> "usr/bin").
std::string CleanName(std::string_view name);

std::string EstargzTocJson(const EstargzToc& toc);
// toc_offset: where the TOC's gzip member starts; every data offset must lie before it.
Result<EstargzToc> ParseEstargzToc(std::string_view json, uint64_t toc_offset);

}  // namespace layerfs
