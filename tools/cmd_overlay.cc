// `layerfs overlay` (also the binary under the name `layerfs-overlay`): a drop-in for
// fuse-overlayfs on plain directory layers, for containers/storage's mount_program. Parsing of
// the -o options lives in fs/mount/overlay_options.h; the mount is the same engine as `layerfs mount`.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/mount/mount.h"
#include "fs/mount/overlay_options.h"
#include "tools/cli.h"

namespace layerfs::cli {

namespace {

constexpr const char* kOverlayHelp = R"(Mount lower directories (overlay's format) with an optional writable upper, as fuse-overlayfs:
  layerfs overlay -o lowerdir=TOP:...:BOTTOM[,upperdir=U,workdir=W][,OPTS] [-f] [-d] [SOURCE] MNT
SOURCE is ignored, as fuse-overlayfs ignores it (mount.fuse3 passes one: fuse3.layerfs-overlay mounts).
Returns 0 once the mount answers; the daemon exits when MNT is unmounted (umount / fusermount3 -u).
Options (docs/overlay.md):
  lowerdir=TOP:...:BOTTOM   lower directories, top first (':' and ',' escaped with '\')
  upperdir=DIR,workdir=DIR  writable layer and its work dir (same filesystem); without: read-only
  squash_to_root            show every entry as owned by 0:0
  squash_to_uid=N, squash_to_gid=N  show every entry as owned by N
  uidmapping=C:H:N[:C:H:N...], gidmapping=...  container:host id ranges for shown/written owners
  static_nlink              directories show st_nlink 1
  allow_other, allow_root, default_permissions, fsname=NAME, subtype=NAME, debug
  ro rw suid nosuid dev nodev exec noexec sync async dirsync [no]atime [no]diratime [no]relatime
  [no]strictatime [no]lazytime: mount(8)'s flags (strictatime, nodiratime, lazytime need root)
  context=/fscontext=/defcontext=/rootcontext=  SELinux labels (ignored when SELinux is off)
  fsync=0, volatile         no fsync at copy-up; the container's fsync calls return at once
  xattr_permissions=1|2     force_mask: owners/modes set only in security.|user.fuseoverlayfs.override_stat
  noacl                     no POSIX ACLs (as root they are on, as on overlayfs)
  no_open                   files open and close without a FUSE request (faster small-file reads;
                            no passthrough, copy-up at the first write instead of the open)
  index_cache=DIR, noindex_cache  where the lowers' merged index is kept between mounts
                            (default $LAYERFS_INDEX_CACHE, else /var/cache/layerfs/overlay-index
                            as root, ~/.cache/layerfs/overlay-index otherwise); none: walk each time
  store=DIR                 lowers that are layers of the layerfs store DIR (DIR/layers/<id>/tree)
                            are read from their index (what the containerd snapshotter returns)
Anything else is an error.)";

struct OverlayArgs {
  std::vector<std::string> options;  // each -o argument
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> positional;  // [SOURCE] MNT
};

void RunOverlay(Cli& cli, const OverlayArgs& args) {
  std::vector<std::string> split;
  for (const auto& o : args.options)
    for (auto& part : SplitOverlayOptions(o)) split.push_back(std::move(part));
  auto parsed = ParseOverlayOptions(split, args.positional.back());
  if (!parsed.ok()) return (void)cli.Fail(parsed.status());
  MountConfig& config = parsed->config;
  config.debug = config.debug || args.debug;
  if (config.debug)
    for (const auto& o : parsed->ignored) std::fprintf(stderr, "layerfs overlay: ignoring option %s\n", o.c_str());
  if (args.foreground || config.debug) {
    Status st = RunMountDaemon(config, -1);
    if (!st.ok()) cli.Fail(st);
    return;
  }
  // Every path is absolute by now; the daemon must not pin the caller's working directory
  // (containers/storage runs us from its storage root), as fuse_daemonize does not.
  if (::chdir("/") != 0) return (void)cli.Fail("chdir /: " + std::string(std::strerror(errno)));
  auto pid = SpawnMountDaemon(config, "/dev/null");
  if (!pid.ok()) cli.Fail(pid.status());
}

}  // namespace

void RegisterOverlayCommands(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("overlay", "Mount plain directory layers like fuse-overlayfs (also run as layerfs-overlay)");
  cmd->footer(kOverlayHelp);
  auto args = std::make_shared<OverlayArgs>();
  cmd->add_option("-o", args->options, "Comma-separated mount options (may repeat)")->allow_extra_args(false);
  cmd->add_flag("-f", args->foreground, "Serve in the foreground until unmounted or interrupted");
  cmd->add_flag("-d", args->debug, "Debug: libfuse traces on stderr, in the foreground");
  cmd->add_option("mountpoint", args->positional, "[SOURCE] MNT")->required()->expected(1, 2);
  cmd->callback([&cli, args] { RunOverlay(cli, *args); });
}

}  // namespace layerfs::cli
