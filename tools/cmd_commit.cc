// Commit commands: `diff NAME` (A/C/D lines like `docker diff`) and `commit NAME IMAGE[:TAG]`
// (the container's upper becomes a new layer on top of its image). Only parsing and printing
// live here; the work is in fs/container/container_commit.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "fs/container/container_commit.h"
#include "layerstore/store/container_store.h"
#include "tools/cli.h"

namespace layerfs::cli {

namespace {

void RegisterDiff(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("diff", "List a container's changes: A added, C changed, D deleted");
  auto name = std::make_shared<std::string>();
  cmd->add_option("CONTAINER", *name, "Container name or ID")->required();
  cmd->callback([&cli, name] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto container = ContainerStore(*store).Get(*name);
    if (!container.ok()) return (void)cli.Fail(container.status());
    auto changes = DiffContainer(*store, *container);
    if (!changes.ok()) return (void)cli.Fail(changes.status());
    for (const auto& c : *changes) std::printf("%c %s\n", c.kind, c.path.c_str());
  });
}

void RegisterCommit(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("commit", "Create a new image from a container's changes");
  auto name = std::make_shared<std::string>();
  auto options = std::make_shared<CommitOptions>();
  cmd->add_option("-m,--message", options->comment, "Commit message");
  cmd->add_option("-a,--author", options->author, "Author (e.g. \"Jane <jane@example.com>\")");
  cmd->add_option("-c,--change", options->changes, "Apply a Dockerfile instruction (CMD, ENV, ...)");
  cmd->add_option("CONTAINER", *name, "Container name or ID")->required();
  cmd->add_option("IMAGE", options->ref, "Name[:tag] for the new image");
  cmd->callback([&cli, name, options] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto container = ContainerStore(*store).Get(*name);
    if (!container.ok()) return (void)cli.Fail(container.status());
    auto image = CommitContainer(*store, *container, *options);
    if (!image.ok()) return (void)cli.Fail(image.status());
    std::printf("%s\n", image->id().str().c_str());
  });
}

}  // namespace

void RegisterCommitCommands(CLI::App& app, Cli& cli) {
  RegisterDiff(app, cli);
  RegisterCommit(app, cli);
}

}  // namespace layerfs::cli
