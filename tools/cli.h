// Shared plumbing of the `layerfs` command line: global options, store opening, error exit.
// Each cmd_*.cc adds its subcommands with one Register*Commands function, called from main.cc.
// A command's callback stores its exit code in Cli::exit_code; errors print exactly one line
// "layerfs: <what>" on stderr and exit 1 (usage errors exit 2), as scripts expect.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "layerstore/base/status.h"
#include "layerstore/store/store.h"

namespace layerfs::cli {

struct Cli {
  std::string root;  // --root / LAYERFS_ROOT; empty: DefaultStoreRoot()
  bool debug = false;
  int exit_code = 0;

  // Opens the store at the chosen root; on failure prints the error and sets exit_code.
  Result<Store> OpenStore();
  // Prints "layerfs: <message>" to stderr, sets exit_code = 1 and returns 1.
  int Fail(const Status& status);
  int Fail(const std::string& message);
};

bool StdoutIsTerminal();

void RegisterImageCommands(CLI::App& app, Cli& cli);        // load import save images history inspect tag rmi image
void RegisterSystemCommands(CLI::App& app, Cli& cli);       // system df, system prune
void RegisterContainerCommands(CLI::App& app, Cli& cli);    // mount umount ps rm stats
void RegisterCommitCommands(CLI::App& app, Cli& cli);       // diff commit
void RegisterRegistryCommands(CLI::App& app, Cli& cli);     // pull push login logout
void RegisterBuildCommands(CLI::App& app, Cli& cli);        // build, builder prune
void RegisterOverlayCommands(CLI::App& app, Cli& cli);      // overlay (and argv[0] layerfs-overlay)
void RegisterSnapshotterCommands(CLI::App& app, Cli& cli);  // snapshotter (containerd proxy plugin)

}  // namespace layerfs::cli
