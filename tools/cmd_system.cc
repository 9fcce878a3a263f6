// System commands: system df [-v]. Only parsing and printing live here; the numbers come from
// layerstore/disk_usage.
#include "tools/cli.h"

namespace layerfs::cli {

void RegisterSystemCommands(CLI::App& app, Cli& cli) {
  (void)app;
  (void)cli;
}

}  // namespace layerfs::cli
