// Decompress: the first stage of unpacking. Reads a blob (gzip, zstd, xz, bzip2 or plain,
// detected from its bytes by libarchive's filters) and pushes the uncompressed bytes through
// `pipe` in full chunks, then closes the pipe with the outcome. Runs on its own thread so that
// inflating overlaps with writing files, as `tar -xzf` overlaps gzip and tar.
#pragma once

#include <cstdint>
#include <functional>

#include "layerstore/layer/chunk_pipe.h"

namespace layerfs {

// fd: the blob, read from its current offset. progress(bytes of blob consumed) is called on
// this thread. Always closes `pipe` (with an error such as "truncated gzip input" on failure).
void Decompress(int fd, ChunkPipe* pipe, const std::function<void(uint64_t)>& progress);

}  // namespace layerfs
