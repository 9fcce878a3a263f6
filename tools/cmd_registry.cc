// Registry commands: pull, push, login, logout. Only parsing and printing live here; the work
// is in layerstore/image_pull, image_push and registry_auth.
#include "tools/cli.h"

namespace layerfs::cli {

void RegisterRegistryCommands(CLI::App& app, Cli& cli) {
  (void)app;
  (void)cli;
}

}  // namespace layerfs::cli
