// RunMountDaemon: the body of `layerfs mount`'s daemon process.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "fs/mount/fuse_mount.h"
#include "fs/mount/mount.h"
#include "layerstore/base/unique_fd.h"

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

bool VolatileMarked(const MountConfig& c) { return !c.sync_upper && !c.volatile_marker.empty(); }

Status MarkVolatile(const MountConfig& c) {
  if (!VolatileMarked(c)) return Status::Ok();
  UniqueFd marker(::open(c.volatile_marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  UniqueFd dir(::open(c.volatile_marker.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!marker.valid() || !dir.valid() || ::fsync(dir.get()) != 0)
    return Status::FromErrno("create " + c.volatile_marker.string());
  return Status::Ok();
}

void UnmarkVolatile(const MountConfig& c) {
  if (!VolatileMarked(c)) return;
  UniqueFd upper(::open(c.upper_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (upper.valid() && ::syncfs(upper.get()) == 0) ::unlink(c.volatile_marker.c_str());
}

}  // namespace

// Signals are blocked in every thread (the FUSE workers inherit the mask) and taken here with
// sigwait: SIGTERM/SIGINT/SIGHUP unmount cleanly; SIGUSR1 comes from the serving thread when
// the session ended on its own (someone unmounted us).
Status RunMountDaemon(const MountConfig& config, int ready_fd) {
  if (Status st = MarkVolatile(config); !st.ok()) {
    Report(ready_fd, st.message());
    return st;
  }
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  pthread_t self = pthread_self();
  auto mount = FuseMount::Create(config, [self] { pthread_kill(self, SIGUSR1); });
  if (!mount.ok()) {
    UnmarkVolatile(config);  // nothing was written
    Report(ready_fd, mount.status().message());
    return mount.status();
  }
  // The mount log's one line on the transport (docs/io-uring.md).
  const FuseMount& m = **mount;
  std::fprintf(stderr, "layerfs: %s: FUSE requests over %s%s%s\n", config.mountpoint.c_str(),
               TransportName(m.transport()), m.transport_why().empty() ? "" : ": ", m.transport_why().c_str());
  Report(ready_fd, "R");
  if (config.after_mount) config.after_mount();
  int sig = 0;
  sigwait(&set, &sig);
  if (sig != SIGUSR1) {
    Status st = (*mount)->Unmount();
    if (!st.ok()) (*mount)->UnmountLazy();  // busy: detach, as SIGTERM must end the mount
  }
  mount->reset();
  UnmarkVolatile(config);
  return Status::Ok();
}

namespace {

void RedirectStdio(const std::filesystem::path& log_file) {
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) out = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (in >= 0) ::dup2(in, STDIN_FILENO);
  if (out >= 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
  }
}

std::string ReadAllFd(int fd) {
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, n);
  }
  return out;
}

// A zombie has exited; only its parent (init, for a daemon) has not collected it yet, which some
// inits do only every few seconds: it counts as gone.
bool Alive(int pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

bool WaitGone(int pid, std::chrono::milliseconds limit) {
  using std::chrono::milliseconds;
  auto deadline = std::chrono::steady_clock::now() + limit;
  // A pidfd turns readable the moment the process exits, so umount returns without a polling
  // delay; where pidfd_open is missing (kernel < 5.3) it polls every 10 ms.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  while (Alive(pid)) {
    ::waitpid(pid, nullptr, WNOHANG);  // reaps it if it is our child (tests, -f)
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (pidfd.valid()) {
      pollfd exited{pidfd.get(), POLLIN, 0};
      ::poll(&exited, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min(left, milliseconds(10)));
    }
  }
  return true;
}

int RunFusermount(const std::filesystem::path& dir, bool lazy) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDERR_FILENO);
    if (lazy) ::execlp("fusermount3", "fusermount3", "-u", "-z", "--", dir.c_str(), nullptr);
    else
      ::execlp("fusermount3", "fusermount3", "-u", "--", dir.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// Double fork: the daemon is not our child (no zombie when the caller exits) and runs in its
// own session, so the terminal's signals do not reach it.
Result<int> SpawnMountDaemon(const MountConfig& config, const std::filesystem::path& log_file,
                             const std::function<void()>& after_exit) {
  int ready[2], pidpipe[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(pidpipe, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  pid_t child = ::fork();
  if (child < 0) return Status::FromErrno("fork");
  if (child == 0) {
    ::close(ready[0]);
    ::close(pidpipe[0]);
    ::setsid();
    pid_t daemon = ::fork();
    if (daemon != 0) ::_exit(daemon < 0 ? 1 : 0);
    int self = ::getpid();
    (void)!::write(pidpipe[1], &self, sizeof(self));
    ::close(pidpipe[1]);
    RedirectStdio(log_file);
    Status st = RunMountDaemon(config, ready[1]);
    if (!st.ok()) std::fprintf(stderr, "layerfs: %s\n", st.message().c_str());
    if (after_exit) after_exit();
    ::_exit(st.ok() ? 0 : 1);
  }
  ::close(ready[1]);
  ::close(pidpipe[1]);
  ::waitpid(child, nullptr, 0);
  int pid = 0;
  if (::read(pidpipe[0], &pid, sizeof(pid)) != sizeof(pid)) pid = 0;
  ::close(pidpipe[0]);
  std::string answer = ReadAllFd(ready[0]);
  ::close(ready[0]);
  if (answer == "R") return pid;
  if (answer.empty()) return Status::Error(EIO, "mount daemon exited before the mount answered (see " + log_file.string() + ")");
  return Status::Error(EIO, answer);
}

Status UnmountMountpoint(const std::filesystem::path& dir, int daemon_pid, bool lazy) {
  bool stale = DeadMountAt(dir);
  if (stale || !Alive(daemon_pid)) lazy = true;
  int r;
  if (::geteuid() == 0) {
    r = ::umount2(dir.c_str(), lazy ? MNT_DETACH : 0) == 0 ? 0 : errno;
    if (r == EBUSY) return Status::Error(EBUSY, dir.string() + ": mount is busy");
    if (r == EINVAL && !stale && !Alive(daemon_pid)) r = 0;  // nothing mounted there any more
    if (r != 0 && r != EINVAL) return Status::FromErrno(r, "unmount " + dir.string());
  } else {
    r = RunFusermount(dir, lazy);
    if (r != 0 && Alive(daemon_pid) && !lazy) return Status::Error(EBUSY, dir.string() + ": mount is busy or not ours");
  }
  if (daemon_pid > 0 && !WaitGone(daemon_pid, std::chrono::seconds(10)))
    return Status::Error(ETIMEDOUT, "daemon " + std::to_string(daemon_pid) + " did not exit after unmount");
  return Status::Ok();
}

}  // namespace layerfs
