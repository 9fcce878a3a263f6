// Image commands: load, import, save, images, history, inspect, tag, rmi and the `image` group.
// Only parsing and printing live here; the work is in layerstore/ (image_load, image_save,
// image_import, image_gc, image_store) and tools/table.
#include "tools/cli.h"

namespace layerfs::cli {

void RegisterImageCommands(CLI::App& app, Cli& cli) {
  (void)app;
  (void)cli;
}

}  // namespace layerfs::cli
