// Commit commands: diff (A/C/D lines like `docker diff`) and commit (upper -> new OCI layer ->
// new image). Only parsing and printing live here; the work is in fs/upper_changes and
// fs/commit_layer.
#include "tools/cli.h"

namespace layerfs::cli {

void RegisterCommitCommands(CLI::App& app, Cli& cli) {
  (void)app;
  (void)cli;
}

}  // namespace layerfs::cli
