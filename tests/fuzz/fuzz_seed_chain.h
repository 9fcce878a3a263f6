// The chain the merged-index seeds are built for (make_fuzz_seeds) and the fuzz target loads
// them as: Load refuses a cache file of another chain before looking at its nodes.
#pragma once

#include <cstdint>

#include "layerstore/base/digest.h"
#include "layerstore/oci/image.h"

namespace layerfs::fuzz {

inline constexpr uint32_t kSeedChainLayers = 2;

inline Digest SeedChainId() {
  return ChainId({Sha256Of(std::string("fuzz seed layer 0")), Sha256Of(std::string("fuzz seed layer 1"))});
}

}  // namespace layerfs::fuzz
