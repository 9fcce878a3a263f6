// Container commands: mount, umount, ps, rm, stats. Only parsing and printing live here; the work is
// done by fs/container/container_ops.h (which uses ContainerStore, ImageStore and the mount).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fs/container/container_ops.h"
#include "fs/mount/mount_stats.h"
#include "layerstore/lazy/partial_image.h"
#include "layerstore/store/disk_usage.h"
#include "tools/cli.h"
#include "tools/table.h"

namespace layerfs::cli {

namespace {

void RegisterMount(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("mount", "Mount an image as a new container's writable root (or remount one by --name)");
  auto req = std::make_shared<MountContainerRequest>();
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--name", req->name, "Container name (an existing container is mounted again with its changes)");
  cmd->add_option("-o", req->options,
                  "Mount options: allow_other, default_permissions, debug, threads=N, volatile (no fsync of "
                  "copy-ups or the container's syncs; after a crash the container is refused, as overlayfs does), "
                  "no_open (files open and close without a FUSE request: no passthrough, copy-up at the first "
                  "write), "
                  "and mount(8)'s own: ro rw nosuid nodev noexec noatime relatime strictatime lazytime sync dirsync ...")
      ->allow_extra_args(false);
  cmd->add_flag("-f,--foreground", req->foreground, "Serve in the foreground until unmounted or interrupted");
  cmd->add_flag("--lazy", req->lazy,
                "IMAGE is a registry reference: mount before its eStargz layers have arrived; they are fetched as "
                "read and completed in the background (README: Lazy mount)");
  auto platform = std::make_shared<std::string>();
  cmd->add_option("--platform", *platform, "With --lazy: pick this platform from a multi-platform image (os/arch[/variant])");
  cmd->add_option("--insecure-registry", req->lazy_options.insecure_registries,
                  "With --lazy: allow plain HTTP to this registry host[:port]")
      ->allow_extra_args(false);
  cmd->add_option("--record-reads", req->record_reads,
                  "Write the image files the container opens to FILE, first open first, one per line: a prefetch list "
                  "for `push --estargz --prefetch-list FILE` (README: eStargz)");
  cmd->add_option("args", *args, "IMAGE DIR (DIR alone with --name of an existing container)")->required();
  cmd->callback([&cli, req, args, platform] {
    auto parsed = ParsePlatform(*platform);
    if (!parsed.ok()) return (void)cli.Fail(parsed.status());
    req->lazy_options.platform = *parsed;
    if (args->size() == 2) {
      req->image = (*args)[0];
      req->dir = (*args)[1];
    } else if (args->size() == 1 && !req->name.empty()) {
      req->dir = (*args)[0];
    } else {
      cli.Fail("usage: layerfs mount [--name NAME] [-o OPTS] [-f] IMAGE DIR");
      cli.exit_code = 2;
      return;
    }
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    if (req->options.empty() && cli.debug) req->options.push_back("debug");
    auto r = MountContainer(*store, *req);
    if (!r.ok()) return (void)cli.Fail(r.status());
    if (!req->foreground) std::printf("%s\n", r->name.c_str());
  });
}

void RegisterUmount(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("umount", "Unmount a container (by mount point or name); also cleans stale mounts");
  auto target = std::make_shared<std::string>();
  cmd->add_option("target", *target, "DIR or NAME")->required();
  cmd->callback([&cli, target] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    Status st = UnmountContainer(*store, *target);
    if (!st.ok()) cli.Fail(st);
  });
}

// A lazily mounted container whose image is still arriving: how much of it is local.
std::optional<LocalBytes> LazyProgress(const Store& store, const ContainerStore& containers, const ContainerRecord& c) {
  auto partial = ReadPartialImage(containers.partial_image_file(c.id));
  if (!partial.ok()) return std::nullopt;
  LocalBytes local = LocalBytesOf(store, *partial);
  if (local.complete) return std::nullopt;
  return local;
}

void RegisterPs(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("ps", "List mounted containers (-a: all)");
  auto all = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>();
  cmd->add_flag("-a,--all", *all, "Show unmounted containers too");
  cmd->add_flag("-q,--quiet", *quiet, "Only display container IDs");
  cmd->add_option("--format", *format, "json: one JSON array");
  cmd->callback([&cli, all, quiet, format] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    ContainerStore containers(*store);
    Table table({"CONTAINER ID", "NAME", "IMAGE", "MOUNTPOINT", "STATUS", "SIZE"});
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& c : containers.List()) {
      ContainerState state = StateOf(c);
      if (!*all && state == ContainerState::kUnmounted) continue;
      if (*quiet) {
        std::printf("%s\n", c.id.substr(0, 12).c_str());
        continue;
      }
      uint64_t size = TreeContentSize(containers.upper_dir(c.id));
      std::optional<LocalBytes> lazy = LazyProgress(*store, containers, c);
      std::string status = ContainerStateName(state);
      if (lazy) status += ", image " + std::to_string(lazy->Percent()) + "% local";
      if (*format == "json") {
        nlohmann::json row = {{"Id", c.id}, {"Name", c.name}, {"Image", c.image_ref}, {"ImageID", c.image_id.str()}, {"Mountpoint", c.mountpoint}, {"Status", ContainerStateName(state)}, {"Size", size}, {"DaemonPid", c.daemon_pid}, {"Created", c.created_unix}};
        if (lazy) row["ImageLocal"] = LocalBytesJson(*lazy);
        rows.push_back(row);
      } else {
        table.AddRow({c.id.substr(0, 12), c.name, c.image_ref, c.mountpoint, status, HumanSize(size)});
      }
    }
    if (*quiet) return;
    if (*format == "json") std::printf("%s\n", rows.dump().c_str());
    else if (!format->empty())
      cli.Fail("unknown --format \"" + *format + "\" (supported: json)");
    else
      std::fputs(table.Render().c_str(), stdout);
  });
}

void RegisterRm(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("rm", "Remove containers (refuses mounted ones unless -f)");
  auto names = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  cmd->add_flag("-f,--force", *force, "Unmount first if mounted");
  cmd->add_option("names", *names, "NAME or ID")->required();
  cmd->callback([&cli, names, force] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    for (const auto& n : *names) {
      Status st = RemoveContainer(*store, n, *force);
      if (!st.ok()) cli.Fail(st);
      else
        std::printf("%s\n", n.c_str());
    }
  });
}

// Like `docker stats --no-stream`, for what a FUSE mount costs: requests by opcode so far.
void RegisterStats(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("stats", "Show the FUSE requests a layerfs mount has served, by operation (needs root)");
  auto dir = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "Mount point (layerfs mount or layerfs-overlay)")->required();
  cmd->add_option("--format", *format, "json: one JSON object {\"OPERATION\": requests}");
  cmd->add_flag("-a,--all", *all, "Also list operations with no requests");
  cmd->callback([&cli, dir, format, all] {
    if (!format->empty() && *format != "json") return (void)cli.Fail("unknown --format \"" + *format + "\" (supported: json)");
    auto counts = ReadRequestStats(*dir);
    if (!counts.ok()) return (void)cli.Fail(counts.status());
    nlohmann::json json = nlohmann::json::object();
    Table table({"OPERATION", "REQUESTS"});
    uint64_t total = 0;
    for (const auto& [op, n] : *counts) {
      json[op] = n;
      total += n;
      if (n > 0 || *all) table.AddRow({op, std::to_string(n)});
    }
    table.AddRow({"TOTAL", std::to_string(total)});
    if (*format == "json") std::printf("%s\n", json.dump().c_str());
    else
      std::fputs(table.Render().c_str(), stdout);
  });
}

}  // namespace

void RegisterContainerCommands(CLI::App& app, Cli& cli) {
  RegisterMount(app, cli);
  RegisterUmount(app, cli);
  RegisterPs(app, cli);
  RegisterRm(app, cli);
  RegisterStats(app, cli);
}

}  // namespace layerfs::cli
