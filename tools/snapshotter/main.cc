// layerfs-snapshotter: the daemon behind `layerfs snapshotter` (tools/cmd_snapshotter.cc execs
// it): containerd's snapshot service on a unix socket, backed by layerstore/snapshots in
// <store>/snapshots. A binary of its own so that gRPC's libraries load only here, not at every
// `layerfs` or `layerfs-overlay` start. The socket is root's alone (0600; its directory, when the
// daemon makes it, 0700), as containerd's own sockets are. SIGTERM or SIGINT stops it.
//   layerfs-snapshotter --root STORE --address SOCKET
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "layerstore/snapshots/snapshotter.h"
#include "layerstore/store/store.h"
#include "tools/snapshotter/snapshot_service.h"

namespace {

namespace fs = std::filesystem;
using layerfs::Status;

int Fail(const std::string& message) {
  std::fprintf(stderr, "layerfs: %s\n", message.c_str());
  return 1;
}

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

int Serve(const fs::path& root, const fs::path& socket) {
  auto store = layerfs::Store::Open(root);
  if (!store.ok()) return Fail(store.status().message());
  auto sn = layerfs::Snapshotter::Open(*store);
  if (!sn.ok()) return Fail(sn.status().message());
  if (Status st = PrepareSocketPath(socket); !st.ok()) return Fail(st.message());

  // Every thread gRPC starts inherits the blocked signals; the main thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  layerfs::cli::SnapshotService service(sn->get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket.string(), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  mode_t old_umask = ::umask(0077);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) return Fail("cannot listen on " + socket.string());
  if (::chmod(socket.c_str(), 0600) != 0) {
    server->Shutdown();
    return Fail("chmod " + socket.string() + ": " + std::strerror(errno));
  }
  std::fprintf(stderr, "layerfs snapshotter: serving %s on %s\n", (store->root() / "snapshots").c_str(), socket.c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  ::unlink(socket.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root, address;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--root") == 0) root = argv[i + 1];
    else if (std::strcmp(argv[i], "--address") == 0)
      address = argv[i + 1];
    else
      return Fail(std::string("layerfs-snapshotter: unknown argument ") + argv[i]);
  }
  if (root.empty() || address.empty() || argc % 2 == 0)
    return Fail("usage: layerfs-snapshotter --root STORE --address SOCKET (run it as `layerfs snapshotter`)");
  return Serve(root, fs::absolute(address));
}
