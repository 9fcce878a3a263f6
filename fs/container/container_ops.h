// Container lifecycle on top of ContainerStore + the mount: what `layerfs mount/umount/ps/rm`
// do, kept here (not in tools/) so tests can reach it.
//   MountContainer  resolve the image, create (or reuse by name) the container, make sure the
//                   layers are unpacked and the chain's merged index exists, check the mount
//                   point, start the daemon (or serve in the foreground), record where.
//   UnmountContainer by mount point or name/id; also cleans stale mounts (daemon killed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "layerstore/lazy/lazy_image.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct MountContainerRequest {
  std::string image;  // reference or image id; empty with an existing container's name
  std::string name;   // existing container: mounted again with its changes; else the new name
  std::filesystem::path dir;
  std::vector<std::string> options;  // -o: allow_other, default_permissions, debug, threads=N, volatile
  bool foreground = false;           // serve in this process until unmounted or signalled
  // --lazy: `image` is a registry reference; its eStargz layers are fetched as they are read
  // and completed in the background by the daemon (LazyImage), which records the image then.
  bool lazy = false;
  LazyPullOptions lazy_options;
  std::filesystem::path record_reads;  // --record-reads: MountConfig::record_reads
};

Result<ContainerRecord> MountContainer(const Store& store, const MountContainerRequest& request);
Status UnmountContainer(const Store& store, const std::string& dir_or_name);

enum class ContainerState { kMounted,
                            kUnmounted,
                            kStale };
const char* ContainerStateName(ContainerState s);
ContainerState StateOf(const ContainerRecord& record);

// rm: refuses a mounted container unless force (which unmounts it first).
Status RemoveContainer(const Store& store, const std::string& name_or_id, bool force);

}  // namespace layerfs
