// `layerfs snapshotter`: containerd's snapshot service (a containerd proxy plugin). The daemon
// is the `layerfs-snapshotter` binary next to this one (tools/snapshotter), which this command
// execs: gRPC's libraries then load only there, not at every `layerfs` start.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "tools/cli.h"

namespace layerfs::cli {

namespace {

constexpr const char* kSnapshotterHelp = R"(containerd (config.toml, version 2):
  [proxy_plugins.layerfs]
    type = "snapshot"
    address = "/run/layerfs/snapshotter.sock"
then `ctr run --snapshotter layerfs ...`. Containers mount through mount.fuse3 and the
`layerfs-overlay` binary, which must be on containerd's PATH. The socket is 0600 (its directory,
when made here, 0700). SIGTERM or SIGINT stops it. Design: docs/snapshotter.md.)";

struct SnapshotterArgs {
  std::string address = "/run/layerfs/snapshotter.sock";
};

void RunSnapshotter(Cli& cli, const SnapshotterArgs& args) {
  std::string root = (cli.root.empty() ? DefaultStoreRoot() : fs::path(cli.root)).string();
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return (void)cli.Fail("cannot find the layerfs binary: " + ec.message());
  std::string daemon = (self.parent_path() / "layerfs-snapshotter").string();
  ::execl(daemon.c_str(), daemon.c_str(), "--root", root.c_str(), "--address", args.address.c_str(),
          static_cast<char*>(nullptr));
  cli.Fail("cannot run " + daemon + ": " + std::strerror(errno));
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
