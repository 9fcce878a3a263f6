// MountFlags: the options mount(8) takes for any filesystem (ro, nosuid, nodev, noexec,
// noatime, relatime, strictatime, lazytime, sync, dirsync, and their opposites) as the mount(2)
// flags they stand for, and how a FUSE mount gets each to the kernel. Both faces (`layerfs
// mount -o`, `layerfs overlay -o`) parse them here; docs/overlay.md has the table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace layerfs {

struct MountFlags {
  unsigned long set = 0;  // MS_* flags the options turned on (as libmount computes them)

  // Applies one option in order, as libmount does ("noatime" sets MS_NOATIME, "atime" clears
  // it, ...). false: `option` is not one of mount(8)'s filesystem-independent flags.
  bool Parse(std::string_view option);

  // Options for libfuse's mount (fuse_session_mount / fusermount3): those of this set that
  // libfuse 3.14 and fusermount3 pass to the kernel. `privileged`: a root mount serves setuid
  // binaries and device nodes (suid, dev) unless nosuid / nodev was asked for.
  std::vector<std::string> FuseOptions(bool privileged) const;
  // The flags libfuse 3.14 / fusermount3 cannot pass (strictatime, nodiratime, lazytime): as
  // root they are set by a remount right after mounting (RemountFlags); rootless they are refused.
  unsigned long KernelOnly() const;
  // The mount(2) flags of a root's MS_REMOUNT that leaves the mount as these options describe.
  unsigned long RemountFlags() const;
  // Whether reads keep atime (noatime) and directory reads keep it (noatime or nodiratime), as
  // the kernel resolves the flags: strictatime overrides noatime.
  bool noatime() const;
  bool nodiratime() const;
  // The first option of KernelOnly() by name, for an error message.
  std::string KernelOnlyName() const;
};

}  // namespace layerfs
