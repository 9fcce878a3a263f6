#include "fs/mount.h"

namespace layerfs {

// Placeholder until the FUSE engine lands (next commits): refuses clearly instead of faking.
Result<std::unique_ptr<Mount>> Mount::Start(const MountConfig& config) {
  return Status::Error(ENOSYS, "layerfs mount: engine not built yet");
}

Status RunMountDaemon(const MountConfig& config, int ready_fd) {
  return Status::Error(ENOSYS, "layerfs mount: engine not built yet");
}

}  // namespace layerfs
