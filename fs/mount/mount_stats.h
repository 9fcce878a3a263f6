// The FUSE request counts of a live layerfs mount (fs/engine/request_stats.h), read through the
// mount point itself, so any layerfs mount answers (`layerfs mount`, layerfs-overlay started by
// podman) without knowing its daemon. Needs CAP_SYS_ADMIN (a trusted.* xattr); the read itself
// is not counted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

// (opcode name, requests) for every opcode the engine serves, in a fixed order.
Result<std::vector<std::pair<std::string, uint64_t>>> ReadRequestStats(const std::filesystem::path& mountpoint);

}  // namespace layerfs
