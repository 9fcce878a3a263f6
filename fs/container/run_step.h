// MountRunExecutor: runs a build's RUN step the way `docker build` does, on a layerfs mount.
//
// A build container (ContainerStore: upper/ and work/ in the store, shown by `ps -a` while it
// lives) is mounted over the step's image at a fresh directory under /tmp. The command runs in
// a child with private mount and PID namespaces (it is PID 1 there), with /proc, a small tmpfs
// /dev (null zero full random urandom tty, fd links), chrooted into the mount, in WORKDIR
// (created if missing), as USER (setgroups/setgid/setuid), with the step's environment; its
// stdout/stderr go to the given fds. On exit 0 the upper becomes the step's layer
// (fs/container/commit_layer.h). The container is removed in every case, also when the build is
// interrupted (SIGINT/SIGTERM/SIGHUP during the step: the step's processes are killed, the
// mount and container cleaned up, then the signal takes its default action). Needs root.
#pragma once

#include "layerstore/build/image_builder.h"
#include "layerstore/store/store.h"

namespace layerfs {

class MountRunExecutor : public RunExecutor {
 public:
  MountRunExecutor(const Store& store, int stdout_fd, int stderr_fd)
      : store_(&store), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}
  Result<Outcome> Run(const Request& request) override;

 private:
  Result<Outcome> RunStep(const Request& request);
  const Store* store_;
  int stdout_fd_;
  int stderr_fd_;
};

}  // namespace layerfs
