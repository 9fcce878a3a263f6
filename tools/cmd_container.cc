// Container commands: mount, umount, ps, rm. Only parsing and printing live here; the work is
// done by ContainerStore (layerstore/) and Mount / the daemon (fs/).
#include <cstdio>
#include <string>

#include "layerstore/container_store.h"
#include "tools/cli.h"

namespace layerfs::cli {

namespace {

void RegisterPs(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("ps", "List containers (mounted ones; -a: all)");
  auto all = std::make_shared<bool>(false);
  cmd->add_flag("-a,--all", *all, "Show unmounted containers too");
  cmd->callback([&cli, all] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    ContainerStore containers(*store);
    std::printf("%-12s  %-20s  %-20s  %s\n", "CONTAINER ID", "NAME", "IMAGE", "MOUNTPOINT");
    for (const auto& c : containers.List()) {
      if (!*all && c.mountpoint.empty()) continue;
      std::printf("%-12s  %-20s  %-20s  %s\n", c.id.substr(0, 12).c_str(), c.name.c_str(),
                  c.image_ref.c_str(), c.mountpoint.c_str());
    }
  });
}

}  // namespace

void RegisterContainerCommands(CLI::App& app, Cli& cli) { RegisterPs(app, cli); }

}  // namespace layerfs::cli
