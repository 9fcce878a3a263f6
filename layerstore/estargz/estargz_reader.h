// Reading an eStargz blob piecewise, as a lazy pull fetches it: the TOC from the bytes between
// its offset (the footer's) and the footer, checked against the layer descriptor's TOC digest
// annotation before it is parsed; and each chunk of a file from its own gzip member, checked
// against the TOC's chunkDigest before a byte of it is handed on. Nothing here trusts the blob.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/estargz/estargz_toc.h"

namespace layerfs {

// A TOC bigger than this is refused (stargz-snapshotter's limit is of the same order).
inline constexpr uint64_t kMaxEstargzTocSize = 64u << 20;

// member: the blob from the TOC's offset to the footer. expected: the annotation's digest of
// the TOC JSON (empty: not checked, for blobs whose descriptor does not carry it).
Result<EstargzToc> ReadEstargzToc(std::string_view member, uint64_t toc_offset, const Digest& expected);

// One chunk of a regular file: where its gzip member lies in the blob, where its bytes go.
struct EstargzChunk {
  uint64_t offset = 0;        // of the gzip member in the blob
  uint64_t end = 0;           // where the next member (or the TOC) starts
  uint64_t inner_offset = 0;  // of the chunk's data in the member's output
  uint64_t file_offset = 0;
  uint64_t length = 0;
  Digest digest;
};

// The chunks of every non-empty regular file, by CleanName, in file order.
std::map<std::string, std::vector<EstargzChunk>> EstargzChunks(const EstargzToc& toc, uint64_t toc_offset);

// member: the blob's bytes [chunk.offset, chunk.end). The chunk's data, or EIO naming what
// failed (a chunk that does not decompress or does not match its digest).
Result<std::string> ReadEstargzChunk(std::string_view member, const EstargzChunk& chunk);

}  // namespace layerfs
