// mount_driver: serves one layerfs mount through fs/mount/mount.h's RunMountDaemon, in the foreground,
// for the bench harness while `layerfs mount` is not available (the harness prefers the CLI).
//   mount_driver STORE UPPER WORK MOUNTPOINT READY_FD DIFF_ID...   (diff_ids bottom first)
// Writes "R" to READY_FD once the mount answers (or the error line), exits when unmounted or on
// SIGTERM/SIGINT.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fs/mount/mount.h"
#include "layerstore/base/digest.h"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: mount_driver STORE UPPER WORK MOUNTPOINT READY_FD DIFF_ID...\n");
    return 2;
  }
  layerfs::MountConfig config;
  config.store_root = argv[1];
  config.upper_dir = argv[2];
  config.work_dir = argv[3];
  config.mountpoint = argv[4];
  int ready_fd = std::stoi(argv[5]);
  for (int i = 6; i < argc; ++i) {
    auto digest = layerfs::Digest::Parse(argv[i]);
    if (!digest.ok()) {
      std::fprintf(stderr, "mount_driver: %s\n", digest.status().message().c_str());
      return 2;
    }
    config.layers.push_back(*digest);
  }
  layerfs::Status st = layerfs::RunMountDaemon(config, ready_fd);
  if (!st.ok()) {
    std::fprintf(stderr, "mount_driver: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
