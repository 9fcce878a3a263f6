// Build commands: `build` (a Dockerfile into an image, printing steps like `docker build`'s
// classic output) and `builder prune`. Only parsing and printing live here; the work is in
// layerstore/image_builder, layerstore/build_cache and fs/run_step (RUN).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "fs/container/run_step.h"
#include "layerstore/build/image_builder.h"
#include "layerstore/store/build_cache.h"
#include "tools/cli.h"

namespace layerfs::cli {

namespace {

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.3g%s", v, units[u]);
  return buf;
}

void AddBuild(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("build", "Build an image from a Dockerfile and a context directory");
  struct Opts {
    BuildOptions build;
    std::string context, dockerfile;
    std::vector<std::string> args;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("-t,--tag", o->build.tags, "Name and optionally a tag (NAME[:TAG])->allow_extra_args(false); may be repeated");
  cmd->add_option("-f,--file", o->dockerfile, "The Dockerfile (default: CONTEXT/Dockerfile)");
  cmd->add_option("--build-arg", o->args, "Set a build-time variable (KEY=VALUE)->allow_extra_args(false); may be repeated");
  cmd->add_flag("--no-cache", o->build.no_cache, "Do not use the build cache (steps still fill it)");
  cmd->add_flag("-q,--quiet", o->quiet, "Print only the image ID on success; RUN output goes to stderr");
  cmd->add_option("CONTEXT", o->context, "Build context directory")->required();
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    o->build.context = o->context;
    o->build.dockerfile = o->dockerfile;
    for (const std::string& kv : o->args) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        // Docker takes KEY alone from the environment.
        const char* v = std::getenv(kv.c_str());
        if (v) o->build.build_args[kv] = v;
        continue;
      }
      o->build.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    MountRunExecutor run(*store, o->quiet ? STDERR_FILENO : STDOUT_FILENO, STDERR_FILENO);
    bool quiet = o->quiet;
    ImageBuilder builder(*store, &run, [quiet](const std::string& line) {
      if (quiet) return;
      std::fputs((line + "\n").c_str(), stdout);
      std::fflush(stdout);  // RUN output is written by children straight to the fds
    });
    auto image = builder.Build(o->build);
    if (!image.ok()) {
      cli.Fail(image.status());
      if (builder.failed_run_exit_code() != 0) cli.exit_code = builder.failed_run_exit_code();
      return;
    }
    if (quiet) std::printf("%s\n", image->id().str().c_str());
  });
}

void AddBuilder(CLI::App& app, Cli& cli) {
  auto* builder = app.add_subcommand("builder", "Manage the build cache");
  builder->require_subcommand(1);
  auto* prune = builder->add_subcommand("prune", "Remove build cache (and the layers only it uses)");
  struct Opts {
    bool all = false, force = false;
  };
  auto o = std::make_shared<Opts>();
  prune->add_flag("-a,--all", o->all, "Remove all build cache, not just what no image builds on");
  prune->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
  prune->callback([&cli, o] {
    if (!o->force) {
      std::printf("WARNING! This will remove %s build cache. Are you sure you want to continue? [y/N] ",
                  o->all ? "all" : "all dangling");
      std::fflush(stdout);
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y") return;
    }
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto report = BuildCache(*store).Prune(o->all);
    if (!report.ok()) return (void)cli.Fail(report.status());
    std::printf("Deleted build cache objects: %zu\nTotal reclaimed space: %s\n", report->records,
                HumanBytes(report->bytes).c_str());
  });
}

}  // namespace

void RegisterBuildCommands(CLI::App& app, Cli& cli) {
  AddBuild(app, cli);
  AddBuilder(app, cli);
}

}  // namespace layerfs::cli
