#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "tools/cli.h"

namespace layerfs::cli {

Result<Store> Cli::OpenStore() {
  fs::path dir = root.empty() ? DefaultStoreRoot() : fs::path(root);
  auto store = Store::Open(dir);
  if (!store.ok()) Fail(store.status());
  return store;
}

int Cli::Fail(const Status& status) { return Fail(status.message()); }

int Cli::Fail(const std::string& message) {
  std::fprintf(stderr, "layerfs: %s\n", message.c_str());
  exit_code = 1;
  return 1;
}

bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

}  // namespace layerfs::cli

int main(int argc, char** argv) {
  using namespace layerfs::cli;
  CLI::App app{"layerfs: copy-on-write union filesystem and image store for container images"};
  app.name("layerfs");
  app.require_subcommand(1);
  app.fallthrough();
  Cli cli;
  app.add_option("--root", cli.root, "Store root (default: $LAYERFS_ROOT, /var/lib/layerfs as root, "
                                     "$XDG_DATA_HOME/layerfs otherwise)")
      ->envname("LAYERFS_ROOT");
  app.add_flag("--debug", cli.debug, "Print debugging detail");
  app.set_version_flag("--version", std::string("layerfs ") + LAYERFS_VERSION);

  RegisterImageCommands(app, cli);
  RegisterSystemCommands(app, cli);
  RegisterContainerCommands(app, cli);
  RegisterCommitCommands(app, cli);
  RegisterRegistryCommands(app, cli);
  RegisterBuildCommands(app, cli);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "layerfs: %s\nSee 'layerfs --help'.\n", e.what());
    return 2;
  }
  return cli.exit_code;
}
