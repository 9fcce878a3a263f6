#include "fs/mount/mount_flags.h"

#include <sys/mount.h>

namespace layerfs {

namespace {

struct FlagOption {
  const char* name;
  unsigned long flag;
  bool on;
};

// mount(8)'s filesystem-independent flags (libmount's table). relatime is the kernel's default
// whenever neither noatime nor strictatime is given, so it needs no flag of its own to work.
constexpr FlagOption kFlags[] = {
    {"ro", MS_RDONLY, true},
    {"rw", MS_RDONLY, false},
    {"nosuid", MS_NOSUID, true},
    {"suid", MS_NOSUID, false},
    {"nodev", MS_NODEV, true},
    {"dev", MS_NODEV, false},
    {"noexec", MS_NOEXEC, true},
    {"exec", MS_NOEXEC, false},
    {"sync", MS_SYNCHRONOUS, true},
    {"async", MS_SYNCHRONOUS, false},
    {"dirsync", MS_DIRSYNC, true},
    {"noatime", MS_NOATIME, true},
    {"atime", MS_NOATIME, false},
    {"nodiratime", MS_NODIRATIME, true},
    {"diratime", MS_NODIRATIME, false},
    {"relatime", MS_RELATIME, true},
    {"norelatime", MS_RELATIME, false},
    {"strictatime", MS_STRICTATIME, true},
    {"nostrictatime", MS_STRICTATIME, false},
    {"lazytime", MS_LAZYTIME, true},
    {"nolazytime", MS_LAZYTIME, false},
};

// What libfuse 3.14's mount code and fusermount3 know (their mount_flags tables).
constexpr FlagOption kFuseKnows[] = {
    {"ro", MS_RDONLY, true},
    {"nosuid", MS_NOSUID, true},
    {"nodev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, true},
    {"sync", MS_SYNCHRONOUS, true},
    {"dirsync", MS_DIRSYNC, true},
    {"noatime", MS_NOATIME, true},
};

constexpr unsigned long kKernelOnly = MS_STRICTATIME | MS_NODIRATIME | MS_LAZYTIME;

}  // namespace

bool MountFlags::Parse(std::string_view option) {
  for (const FlagOption& f : kFlags) {
    if (option != f.name) continue;
    if (f.on) set |= f.flag;
    else
      set &= ~f.flag;
    return true;
  }
  return false;
}

std::vector<std::string> MountFlags::FuseOptions(bool privileged) const {
  std::vector<std::string> out;
  for (const FlagOption& f : kFuseKnows)
    if (set & f.flag) out.push_back(f.name);
  // libfuse mounts nosuid,nodev unless told otherwise; fusermount3 refuses suid/dev rootless.
  if (privileged && !(set & MS_NOSUID)) out.push_back("suid");
  if (privileged && !(set & MS_NODEV)) out.push_back("dev");
  return out;
}

unsigned long MountFlags::KernelOnly() const { return set & kKernelOnly; }

unsigned long MountFlags::RemountFlags() const { return set; }

bool MountFlags::noatime() const { return (set & MS_NOATIME) && !(set & MS_STRICTATIME); }

bool MountFlags::nodiratime() const { return noatime() || (set & MS_NODIRATIME); }

std::string MountFlags::KernelOnlyName() const {
  for (const FlagOption& f : kFlags)
    if (f.on && (f.flag & KernelOnly())) return f.name;
  return "";
}

}  // namespace layerfs
