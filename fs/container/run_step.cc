#include "fs/container/run_step.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <memory>

#include "fs/container/commit_layer.h"
#include "fs/index/merged_index.h"
#include "fs/mount/mount.h"
#include "layerstore/base/remove_tree.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/container_store.h"

namespace layerfs {

namespace {

// Everything the children need, prepared before fork: after fork in this multi-threaded
// process they call only async-signal-safe functions.
struct ChildPlan {
  std::string root;
  std::string proc, dev;
  std::vector<std::pair<std::string, dev_t>> devices;      // path below root, device number
  std::vector<std::string> host_devices;                   // bind sources when mknod is refused
  std::vector<std::pair<std::string, std::string>> links;  // target, path below root
  std::vector<std::string> workdir_parents;                // "/a", "/a/b" (inside the chroot)
  std::string workdir;
  std::vector<std::string> exec_candidates;
  std::vector<char*> argv, envp;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int out_fd = 1, err_fd = 2, null_fd = -1, report_fd = -1;
};

// Child failure before exec: errno and the failing step go to the parent through the pipe.
[[noreturn]] void ChildFail(int fd, const char* step) {
  int err = errno;
  (void)!::write(fd, &err, sizeof err);
  (void)!::write(fd, step, std::strlen(step));
  _exit(127);
}

void MakeDevices(const ChildPlan& p) {
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const char* path = p.devices[i].first.c_str();
    if (::mknod(path, S_IFCHR | 0666, p.devices[i].second) == 0) {
      ::chmod(path, 0666);  // umask
      continue;
    }
    int fd = ::open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) ChildFail(p.report_fd, "create /dev node");
    ::close(fd);
    if (::mount(p.host_devices[i].c_str(), path, nullptr, MS_BIND, nullptr) != 0) ChildFail(p.report_fd, "bind /dev node");
  }
  for (const auto& [target, path] : p.links) (void)::symlink(target.c_str(), path.c_str());
}

// PID 1 of the new PID namespace: sets up the root and execs the command.
[[noreturn]] void RunCommand(const ChildPlan& p) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the namespace dies with the supervisor
  if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) ChildFail(p.report_fd, "mount /proc");
  if (::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") != 0)
    ChildFail(p.report_fd, "mount /dev");
  MakeDevices(p);
  if (::chroot(p.root.c_str()) != 0) ChildFail(p.report_fd, "chroot");
  for (const std::string& d : p.workdir_parents) ::mkdir(d.c_str(), 0755);
  if (::chdir(p.workdir.c_str()) != 0) ChildFail(p.report_fd, "chdir to WORKDIR");
  if (::dup2(p.null_fd, 0) < 0 || ::dup2(p.out_fd, 1) < 0 || ::dup2(p.err_fd, 2) < 0) ChildFail(p.report_fd, "dup2");
  if (::setgroups(p.groups.size(), p.groups.data()) != 0) ChildFail(p.report_fd, "setgroups");
  if (::setgid(p.gid) != 0) ChildFail(p.report_fd, "setgid");
  if (::setuid(p.uid) != 0) ChildFail(p.report_fd, "setuid");
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // again: a change of credentials clears it
  int err = ENOENT;
  for (const std::string& path : p.exec_candidates) {
    ::execve(path.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  errno = err;
  ChildFail(p.report_fd, "exec");
}

// The first child: new namespaces, then PID 1 under it; exits with PID 1's status.
[[noreturn]] void Supervise(const ChildPlan& p, pid_t builder) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != builder) _exit(128 + SIGKILL);
  if (::unshare(CLONE_NEWNS | CLONE_NEWPID) != 0) ChildFail(p.report_fd, "unshare(CLONE_NEWNS|CLONE_NEWPID)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(p.report_fd, "make mounts private");
  pid_t pid = ::fork();
  if (pid < 0) ChildFail(p.report_fd, "fork");
  if (pid == 0) RunCommand(p);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.rfind(key + "=", 0) == 0) return e.substr(key.size() + 1);
  return "";
}

ChildPlan MakePlan(const RunExecutor::Request& req, const std::string& root, std::vector<std::string>* storage) {
  ChildPlan p;
  p.root = root;
  p.proc = root + "/proc";
  p.dev = root + "/dev";
  struct Dev {
    const char* name;
    unsigned major, minor;
  };
  for (const Dev& d : {Dev{"null", 1, 3}, Dev{"zero", 1, 5}, Dev{"full", 1, 7}, Dev{"random", 1, 8},
                       Dev{"urandom", 1, 9}, Dev{"tty", 5, 0}}) {
    p.devices.emplace_back(p.dev + "/" + d.name, makedev(d.major, d.minor));
    p.host_devices.push_back(std::string("/dev/") + d.name);
  }
  p.links = {{"/proc/self/fd", p.dev + "/fd"}, {"/proc/self/fd/0", p.dev + "/stdin"}, {"/proc/self/fd/1", p.dev + "/stdout"}, {"/proc/self/fd/2", p.dev + "/stderr"}};
  p.workdir = req.workdir;
  for (size_t slash = req.workdir.find('/', 1);; slash = req.workdir.find('/', slash + 1)) {
    p.workdir_parents.push_back(req.workdir.substr(0, slash));
    if (slash == std::string::npos) break;
  }
  const std::string& cmd = req.argv.front();
  if (cmd.find('/') != std::string::npos) {
    p.exec_candidates.push_back(cmd);
  } else {
    std::string path = EnvValue(req.env, "PATH");
    for (size_t start = 0; start <= path.size();) {
      size_t colon = path.find(':', start);
      if (colon == std::string::npos) colon = path.size();
      std::string dir = path.substr(start, colon - start);
      p.exec_candidates.push_back((dir.empty() ? "." : dir) + "/" + cmd);
      start = colon + 1;
    }
  }
  *storage = req.argv;
  storage->insert(storage->end(), req.env.begin(), req.env.end());
  for (size_t i = 0; i < storage->size(); ++i)
    (i < req.argv.size() ? p.argv : p.envp).push_back((*storage)[i].data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);
  p.uid = req.uid;
  p.gid = req.gid;
  p.groups.assign(req.groups.begin(), req.groups.end());
  return p;
}

// The build container and its mount point, removed however the step ends.
struct BuildContainer {
  const Store* store;
  ContainerRecord record;
  std::string mountpoint;
  ~BuildContainer() {
    if (!mountpoint.empty()) ::rmdir(mountpoint.c_str());
    if (!record.id.empty()) (void)ContainerStore(*store).Remove(record.id);
  }
};

// Creates the mount-point directories /proc and /dev in the mount if the image lacks them;
// returns the ones made, to remove before the upper is committed.
std::vector<std::string> EnsureMountDirs(const std::string& root) {
  std::vector<std::string> made;
  for (const char* d : {"/proc", "/dev"}) {
    std::string path = root + d;
    if (::mkdir(path.c_str(), 0755) == 0) made.push_back(path);
  }
  return made;
}

// While a RUN step runs, Ctrl-C / SIGTERM / SIGHUP must not kill the build with its mount still
// up: the handler kills the step's supervisor (the namespace dies with it, PR_SET_PDEATHSIG),
// the step unwinds (unmount, container removed), and the guard's destructor re-raises the signal
// with its default action, so the build still ends the way the user asked.
volatile sig_atomic_t g_caught_signal = 0;
volatile pid_t g_supervisor = 0;

void OnInterrupt(int sig) {
  g_caught_signal = sig;
  if (g_supervisor > 0) ::kill(g_supervisor, SIGKILL);
}

class InterruptGuard {
 public:
  InterruptGuard() {
    g_caught_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &previous_[i]);
  }
  ~InterruptGuard() {
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
    if (int sig = g_caught_signal; sig != 0) {
      ::signal(sig, SIG_DFL);
      ::raise(sig);
    }
  }
  static bool interrupted() { return g_caught_signal != 0; }

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction previous_[3];
};

Result<int> RunInNamespaces(const ChildPlan& plan) {
  pid_t builder = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) Supervise(plan, builder);
  g_supervisor = pid;
  if (InterruptGuard::interrupted()) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno("wait for RUN");
  }
  g_supervisor = 0;
  if (InterruptGuard::interrupted()) return Status::Error(EINTR, "RUN interrupted");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<LayerBlob> CommitUpper(const Store& store, const std::vector<Digest>& layers, const std::filesystem::path& upper) {
  ASSIGN_OR_RETURN(MergedIndex index, MergedIndex::LoadOrBuild(store, layers));
  std::vector<std::filesystem::path> trees;
  trees.reserve(layers.size());
  for (const Digest& d : layers) trees.push_back(store.layer_tree(d));
  ASSIGN_OR_RETURN(BlobWriter writer, BlobStore(store).NewWriter());
  ASSIGN_OR_RETURN(CommittedLayer committed, WriteCommitLayer(upper, index, trees, &writer));
  uint64_t size = writer.bytes_written();
  ASSIGN_OR_RETURN(Digest blob, writer.Commit());
  return LayerBlob{Descriptor{kOciLayerGzipType, blob, size, nlohmann::json(), nlohmann::json()}, committed.diff_id};
}

}  // namespace

Result<RunExecutor::Outcome> MountRunExecutor::Run(const Request& request) {
  InterruptGuard guard;  // outlives the step's mount and container (destroyed first)
  return RunStep(request);
}

Result<RunExecutor::Outcome> MountRunExecutor::RunStep(const Request& request) {
  if (::geteuid() != 0) return Status::Error(EPERM, "RUN needs root (mount and PID namespaces, chroot)");
  if (request.argv.empty()) return Status::Error(EINVAL, "RUN: empty command");
  ContainerStore containers(*store_);
  BuildContainer c{store_, {}, {}};
  ASSIGN_OR_RETURN(c.record, containers.Create(request.image, "(build step)", ""));
  char tmpl[] = "/tmp/layerfs-run-XXXXXX";
  if (!::mkdtemp(tmpl)) return Status::FromErrno("create RUN mount point");
  c.mountpoint = tmpl;
  MountConfig config;
  config.store_root = store_->root();
  config.layers = request.layers;
  config.upper_dir = containers.upper_dir(c.record.id);
  config.work_dir = containers.work_dir(c.record.id);
  config.mountpoint = c.mountpoint;
  config.allow_other = true;
  ASSIGN_OR_RETURN(std::unique_ptr<Mount> mount, Mount::Start(config));
  // Recorded so that `ps` shows the step and `umount`/`rm` can clean up after a killed build.
  c.record.mountpoint = c.mountpoint;
  c.record.daemon_pid = ::getpid();
  (void)containers.Update(c.record);
  std::vector<std::string> made = EnsureMountDirs(c.mountpoint);
  std::vector<std::string> storage;
  ChildPlan plan = MakePlan(request, c.mountpoint, &storage);
  plan.out_fd = stdout_fd_;
  plan.err_fd = stderr_fd_;
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (null_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0) return Status::FromErrno("RUN setup");
  plan.null_fd = null_fd;
  plan.report_fd = report[1];
  auto exit_code = RunInNamespaces(plan);
  ::close(report[1]);
  ::close(null_fd);
  int err = 0;
  char step[128] = {};
  bool failed = ::read(report[0], &err, sizeof err) == sizeof err;
  if (failed) (void)!::read(report[0], step, sizeof step - 1);
  ::close(report[0]);
  for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
  Status unmounted = mount->Unmount();
  if (!exit_code.ok()) return exit_code.status();
  if (failed && std::string_view(step) == "exec")
    return Status::FromErrno(err, "RUN: cannot execute \"" + request.argv.front() + "\" (searched PATH)");
  if (failed) return Status::FromErrno(err, std::string("RUN setup: ") + step);
  RETURN_IF_ERROR(unmounted);
  Outcome out;
  out.exit_code = *exit_code;
  if (out.exit_code != 0) return out;
  ASSIGN_OR_RETURN(out.layer, CommitUpper(*store_, request.layers, config.upper_dir));
  return out;
}

}  // namespace layerfs
