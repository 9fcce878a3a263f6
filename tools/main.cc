#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include <string>
#include <vector>

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

namespace {

// Installed as `layerfs-overlay` (containers/storage's mount_program), the binary is
// `layerfs overlay`: the arguments are fuse-overlayfs's.
std::vector<char*> OverlayArgv(int argc, char** argv) {
  const char* base = std::strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (std::strcmp(base, "layerfs-overlay") != 0) return {argv, argv + argc};
  static char overlay[] = "overlay";
  std::vector<char*> out = {argv[0], overlay};
  out.insert(out.end(), argv + 1, argv + argc);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace layerfs::cli;
  std::vector<char*> args = OverlayArgv(argc, argv);
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
  RegisterOverlayCommands(app, cli);

  try {
    app.parse(static_cast<int>(args.size()), args.data());
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
