// The eStargz flags `push` and `save` share: --estargz, --prefetch-list FILE and
// --estargz-chunk-size BYTES, turned into the options of the conversion (estargz_convert.h).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "layerstore/estargz/estargz_convert.h"

namespace layerfs::cli {

struct EstargzFlags {
  bool on = false;
  std::string prefetch_list;
  uint64_t chunk_size = kEstargzDefaultChunkSize;

  void Add(CLI::App* cmd);
  // EINVAL when --prefetch-list or --estargz-chunk-size is given without --estargz.
  Result<EstargzOptions> Options() const;
};

}  // namespace layerfs::cli
