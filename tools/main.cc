#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include <string>
#include <vector>

#include "fs/mount/fuse_transport.h"
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

// Installed as /sbin/mount.fuse.layerfs, the binary is the helper mount(8) runs for a
// fuse.layerfs mount: `mount.fuse.layerfs SOURCE TARGET [-o OPTIONS]`. A remount (`mount -o
// remount,ro TARGET`) is the kernel's alone: mount(8) again without helpers (-i), which merges
// the options with the mount's own and calls mount(2). New mounts are made by `layerfs mount` /
// `layerfs overlay`. Returns -1 when argv[0] is not the helper.
int MountHelper(int argc, char** argv) {
  const char* base = std::strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (std::strcmp(base, "mount.fuse.layerfs") != 0) return -1;
  const char* target = nullptr;
  const char* options = nullptr;
  for (int i = 1, positional = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "-o") == 0 && i + 1 < argc) options = argv[++i];
    else if (argv[i][0] != '-' && positional++ == 1)
      target = argv[i];
  }
  std::string opts = options ? options : "";
  bool remount = ("," + opts + ",").find(",remount,") != std::string::npos;
  if (target == nullptr || !remount) {
    std::fprintf(stderr,
                 "mount.fuse.layerfs: only remounts go through mount(8); mount with `layerfs mount` or "
                 "`layerfs overlay`\n");
    return 32;  // mount(8)'s "mount failure"
  }
  execlp("mount", "mount", "-i", "-o", opts.c_str(), target, static_cast<char*>(nullptr));
  std::perror("mount.fuse.layerfs: mount");
  return 32;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace layerfs::cli;
  if (int helper = MountHelper(argc, argv); helper >= 0) return helper;
  std::vector<char*> args = OverlayArgv(argc, argv);
  CLI::App app{"layerfs: copy-on-write union filesystem and image store for container images"};
  app.name("layerfs");
  app.require_subcommand(1);
  app.fallthrough();
  Cli cli;
  app.add_option("--root", cli.root,
                 "Store root (default: $LAYERFS_ROOT, /var/lib/layerfs as root, "
                 "$XDG_DATA_HOME/layerfs otherwise)")
      ->envname("LAYERFS_ROOT");
  app.add_flag("--debug", cli.debug, "Print debugging detail");
  app.set_version_flag("--version", std::function<std::string()>([] {
                         return std::string("layerfs ") + LAYERFS_VERSION + " (" + layerfs::FuseBuildSummary() + ")";
                       }));

  RegisterImageCommands(app, cli);
  RegisterSystemCommands(app, cli);
  RegisterContainerCommands(app, cli);
  RegisterCommitCommands(app, cli);
  RegisterRegistryCommands(app, cli);
  RegisterBuildCommands(app, cli);
  RegisterOverlayCommands(app, cli);
  RegisterSnapshotterCommands(app, cli);

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
