// `layerfs snapshotter`: containerd's snapshot service on a unix socket (a containerd proxy
// plugin), backed by layerstore/snapshots in <store>/snapshots. The socket is root's alone
// (0600; its directory, when the daemon makes it, 0700), as containerd's own sockets are.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "layerstore/snapshots/snapshotter.h"
#include "tools/cli.h"
#include "tools/snapshot_service.h"

namespace layerfs::cli {

namespace {

constexpr const char* kSnapshotterHelp = R"(containerd (config.toml, version 2):
  [proxy_plugins.layerfs]
    type = "snapshot"
    address = "/run/layerfs/snapshotter.sock"
then `ctr run --snapshotter layerfs ...`. Containers mount through mount.fuse3 and the
`layerfs-overlay` binary, which must be on containerd's PATH. SIGTERM or SIGINT stops it.)";

struct SnapshotterArgs {
  std::string address = "/run/layerfs/snapshotter.sock";
};

// Makes the socket's directory (0700) when missing and removes a socket a dead daemon left.
Status PrepareSocketPath(const fs::path& socket) {
  fs::path dir = socket.parent_path();
  std::error_code ec;
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec || ::chmod(dir.c_str(), 0700) != 0) return Status::Error(EIO, "create " + dir.string());
  }
  struct stat st {};
  if (::lstat(socket.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::Error(EEXIST, socket.string() + " exists and is not a socket");
    if (::unlink(socket.c_str()) != 0) return Status::FromErrno("remove stale " + socket.string());
  }
  return Status::Ok();
}

void RunSnapshotter(Cli& cli, const SnapshotterArgs& args) {
  auto store = cli.OpenStore();
  if (!store.ok()) return;
  auto sn = Snapshotter::Open(store->root() / "snapshots");
  if (!sn.ok()) return (void)cli.Fail(sn.status());
  fs::path socket = fs::absolute(args.address);
  if (Status st = PrepareSocketPath(socket); !st.ok()) return (void)cli.Fail(st);

  // Every thread gRPC starts inherits the blocked signals; the main thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  SnapshotService service(sn->get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket.string(), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  mode_t old_umask = ::umask(0077);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) return (void)cli.Fail("cannot listen on " + socket.string());
  if (::chmod(socket.c_str(), 0600) != 0) {
    server->Shutdown();
    return (void)cli.Fail("chmod " + socket.string() + ": " + std::strerror(errno));
  }
  std::fprintf(stderr, "layerfs snapshotter: serving %s on %s\n", (store->root() / "snapshots").c_str(),
               socket.c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  ::unlink(socket.c_str());
}

}  // namespace

void RegisterSnapshotterCommands(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("snapshotter", "Serve containerd's snapshot API on the store (a proxy plugin)");
  cmd->footer(kSnapshotterHelp);
  auto args = std::make_shared<SnapshotterArgs>();
  cmd->add_option("--address", args->address, "Unix socket to listen on")->capture_default_str();
  cmd->callback([&cli, args] { RunSnapshotter(cli, *args); });
}

}  // namespace layerfs::cli
