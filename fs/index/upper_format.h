// UpperFormat: overlay's on-disk markers in an upper directory (docs/upper-format.md), read in
// every form kernel overlayfs and fuse-overlayfs write, written in the form this process may:
//   whiteout  character device 0/0, else an empty file ".wh.NAME"
//   opaque    xattr <ns>.overlay.opaque = "y" (also read: a ".wh..wh..opq" file and
//             fuse-overlayfs's user.fuseoverlayfs.opaque = "y")
//   redirect  xattr <ns>.overlay.redirect = "/lower/path" on a renamed lower directory
//   origin    xattr <ns>.layerfs.origin = merged-index node number (keeps st_ino on copy-up)
//   links-only xattr <ns>.layerfs.links_only = "y" on a dir copied up only for hard links
//   override  xattr user.containers.override_stat = "uid:gid:mode" (rootless ownership/mode);
//             with fuse-overlayfs's xattr_permissions=1|2 (containers/storage's force_mask)
//             security.fuseoverlayfs.override_stat / user.fuseoverlayfs.override_stat instead.
//             All three are read, in fuse-overlayfs's order; a mode without file type bits
//             (as fuse-overlayfs and containers/storage write it) keeps the type on disk.
// <ns> is "trusted" as root, "user" otherwise; both are read. These xattrs are private: they
// never show through the mount. Every function takes a directory fd + name (or "" for the dir).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace layerfs {

struct StatOverride {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0;  // incl. S_IFMT
};

class UpperFormat {
 public:
  static constexpr const char* kContainersOverride = "user.containers.override_stat";
  static constexpr const char* kPrivilegedOverride = "security.fuseoverlayfs.override_stat";  // xattr_permissions=1
  static constexpr const char* kUserOverride = "user.fuseoverlayfs.override_stat";            // xattr_permissions=2

  // override_xattr: where SetOverride writes (one of the three above).
  explicit UpperFormat(bool privileged, const char* override_xattr = kContainersOverride)
      : privileged_(privileged), override_xattr_(override_xattr) {}
  bool privileged() const { return privileged_; }
  const char* override_xattr() const { return override_xattr_; }

  static bool IsWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }
  static bool IsPrivateXattr(std::string_view name);
  static bool IsWhiteoutFileName(std::string_view name) { return name.substr(0, 4) == ".wh."; }
  // "/proc/self/fd/<dirfd>[/<name>]": a path usable with l*xattr and friends.
  static std::string FdPath(int dirfd, std::string_view name);

  // lstat of dir/name: 0 / -errno; *whiteout when it is a 0/0 chardev.
  int StatChild(int dirfd, const std::string& name, struct stat* st, bool* whiteout) const;
  // A ".wh.NAME" file (the fallback whiteout form) hides NAME.
  bool HasWhiteoutFile(int dirfd, const std::string& name) const;
  int CreateWhiteout(int dirfd, const std::string& name) const;  // 0 / -errno
  // Removes a ".wh.NAME" fallback whiteout if there is one (after NAME was created).
  void RemoveWhiteoutFile(int dirfd, const std::string& name) const;

  bool IsOpaque(int dirfd) const;  // dirfd: the directory itself
  int SetOpaque(int dirfd, const std::string& name) const;
  std::optional<std::string> Redirect(int dirfd) const;
  int SetRedirect(int dirfd, const std::string& name, const std::string& lower_path) const;
  std::optional<uint32_t> Origin(int dirfd, const std::string& name) const;
  int SetOrigin(int dirfd, const std::string& name, uint32_t node) const;
  // A directory copied up only to hold the links of a hard-link group's copy-up: overlayfs
  // would not have copied it up (it links members in lazily), so it still shows as lower.
  bool IsLinksOnly(int dirfd) const;  // dirfd: the directory itself
  int SetLinksOnly(int dirfd) const;
  void ClearLinksOnly(int dirfd) const;
  std::optional<StatOverride> Override(int dirfd, const std::string& name) const;
  // "UID:GID:MODE" (decimal ids, octal mode), as containers/storage and fuse-overlayfs write it.
  static std::optional<StatOverride> ParseOverride(std::string_view value);
  int SetOverride(int dirfd, const std::string& name, const StatOverride& o) const;

 private:
  std::optional<std::string> GetPrivate(int dirfd, const std::string& name, const char* suffix) const;
  int SetPrivate(int dirfd, const std::string& name, const char* suffix, const std::string& value) const;
  bool privileged_;
  const char* override_xattr_;
};

// Sets a directory's atime/mtime back to `before` (copy-up into it is not a user change).
void RestoreTimes(int dirfd, const struct stat& before);

}  // namespace layerfs
