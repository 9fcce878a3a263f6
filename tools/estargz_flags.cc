#include "tools/estargz_flags.h"

namespace layerfs::cli {

void EstargzFlags::Add(CLI::App* cmd) {
  cmd->add_flag("--estargz", on, "Write the layers as eStargz (gzip with a table of contents: lazily pullable)");
  cmd->add_option("--prefetch-list", prefetch_list,
                  "With --estargz: file of paths the container reads first, one a line; they go first in their layers");
  cmd->add_option("--estargz-chunk-size", chunk_size, "With --estargz: bytes of a file per chunk (default 4 MiB)")
      ->check(CLI::PositiveNumber);
}

Result<EstargzOptions> EstargzFlags::Options() const {
  if (!on && (!prefetch_list.empty() || chunk_size != kEstargzDefaultChunkSize))
    return Status::Error(EINVAL, "--prefetch-list and --estargz-chunk-size need --estargz");
  EstargzOptions o;
  o.chunk_size = chunk_size;
  if (!prefetch_list.empty()) {
    ASSIGN_OR_RETURN(o.prefetch, ReadPrefetchList(prefetch_list));
  }
  return o;
}

}  // namespace layerfs::cli
