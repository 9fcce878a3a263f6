// RunMountDaemon: the body of `layerfs mount`'s daemon process.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "fs/fuse_mount.h"
#include "fs/mount.h"

namespace layerfs {

namespace {

void Report(int fd, const std::string& text) {
  if (fd < 0) return;
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) break;
    off += n;
  }
  ::close(fd);
}

}  // namespace

// Signals are blocked in every thread (the FUSE workers inherit the mask) and taken here with
// sigwait: SIGTERM/SIGINT/SIGHUP unmount cleanly; SIGUSR1 comes from the serving thread when
// the session ended on its own (someone unmounted us).
Status RunMountDaemon(const MountConfig& config, int ready_fd) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  pthread_t self = pthread_self();
  auto mount = FuseMount::Create(config, [self] { pthread_kill(self, SIGUSR1); });
  if (!mount.ok()) {
    Report(ready_fd, mount.status().message());
    return mount.status();
  }
  Report(ready_fd, "R");
  int sig = 0;
  sigwait(&set, &sig);
  if (sig != SIGUSR1) {
    Status st = (*mount)->Unmount();
    if (!st.ok()) (*mount)->UnmountLazy();  // busy: detach, as SIGTERM must end the mount
  }
  mount->reset();
  return Status::Ok();
}

}  // namespace layerfs
