#include "fs/index/upper_format.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

namespace layerfs {

namespace {

// name empty: the inode of dirfd itself (which may be an O_PATH fd): getxattr follows the
// /proc/self/fd magic link to it; l*xattr would address the link.
std::optional<std::string> GetXattr(int dirfd, const std::string& name, const std::string& key) {
  char buf[4096];
  std::string path = UpperFormat::FdPath(dirfd, name);
  ssize_t n = name.empty() ? ::getxattr(path.c_str(), key.c_str(), buf, sizeof(buf))
                           : ::lgetxattr(path.c_str(), key.c_str(), buf, sizeof(buf));
  if (n < 0) return std::nullopt;
  return std::string(buf, n);
}

int SetXattr(int dirfd, const std::string& name, const std::string& key, const std::string& value) {
  std::string path = UpperFormat::FdPath(dirfd, name);
  int r = name.empty() ? ::setxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0)
                       : ::lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0);
  return r == 0 ? 0 : -errno;
}

}  // namespace

bool UpperFormat::IsPrivateXattr(std::string_view name) {
  // fuse-overlayfs's own bookkeeping (user.fuseoverlayfs.origin/opaque) in uppers it wrote.
  for (std::string_view p : {"trusted.overlay.", "user.overlay.", "trusted.layerfs.", "user.layerfs.", "user.fuseoverlayfs."})
    if (name.substr(0, p.size()) == p) return true;
  return name == UpperFormat::kContainersOverride || name == UpperFormat::kPrivilegedOverride;
}

std::string UpperFormat::FdPath(int dirfd, std::string_view name) {
  std::string p = "/proc/self/fd/" + std::to_string(dirfd);
  if (!name.empty()) {
    p += '/';
    p += name;
  }
  return p;
}

int UpperFormat::StatChild(int dirfd, const std::string& name, struct stat* st, bool* whiteout) const {
  *whiteout = false;
  if (::fstatat(dirfd, name.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0) {
    *whiteout = IsWhiteout(*st);
    return 0;
  }
  return -errno;
}

bool UpperFormat::HasWhiteoutFile(int dirfd, const std::string& name) const {
  return ::faccessat(dirfd, (".wh." + name).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

// Kernel overlayfs's form first; unprivileged mknod of 0/0 works since Linux 5.8, else the
// ".wh.NAME" file fuse-overlayfs falls back to.
int UpperFormat::CreateWhiteout(int dirfd, const std::string& name) const {
  if (::mknodat(dirfd, name.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0) return 0;
  if (errno != EPERM) return -errno;
  int fd = ::openat(dirfd, (".wh." + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0000);
  if (fd < 0) return -errno;
  ::close(fd);
  return 0;
}

void UpperFormat::RemoveWhiteoutFile(int dirfd, const std::string& name) const {
  ::unlinkat(dirfd, (".wh." + name).c_str(), 0);
}

std::optional<std::string> UpperFormat::GetPrivate(int dirfd, const std::string& name, const char* suffix) const {
  // Written under the namespace this process may use; read from both.
  const char* first = privileged_ ? "trusted." : "user.";
  const char* second = privileged_ ? "user." : "trusted.";
  if (auto v = GetXattr(dirfd, name, std::string(first) + suffix)) return v;
  return GetXattr(dirfd, name, std::string(second) + suffix);
}

int UpperFormat::SetPrivate(int dirfd, const std::string& name, const char* suffix, const std::string& value) const {
  return SetXattr(dirfd, name, std::string(privileged_ ? "trusted." : "user.") + suffix, value);
}

bool UpperFormat::IsOpaque(int dirfd) const {
  auto v = GetPrivate(dirfd, "", "overlay.opaque");
  if (v && *v == "y") return true;
  if (GetXattr(dirfd, "", "user.fuseoverlayfs.opaque") == std::optional<std::string>("y")) return true;
  return ::faccessat(dirfd, ".wh..wh..opq", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int UpperFormat::SetOpaque(int dirfd, const std::string& name) const {
  return SetPrivate(dirfd, name, "overlay.opaque", "y");
}

std::optional<std::string> UpperFormat::Redirect(int dirfd) const {
  return GetPrivate(dirfd, "", "overlay.redirect");
}

int UpperFormat::SetRedirect(int dirfd, const std::string& name, const std::string& lower_path) const {
  return SetPrivate(dirfd, name, "overlay.redirect", lower_path);
}

std::optional<uint32_t> UpperFormat::Origin(int dirfd, const std::string& name) const {
  auto v = GetPrivate(dirfd, name, "layerfs.origin");
  if (!v || v->empty()) return std::nullopt;
  try {
    return static_cast<uint32_t>(std::stoul(*v));
  } catch (...) {
    return std::nullopt;
  }
}

int UpperFormat::SetOrigin(int dirfd, const std::string& name, uint32_t node) const {
  return SetPrivate(dirfd, name, "layerfs.origin", std::to_string(node));
}

// Checked on hot paths (getattr, every change): one getxattr, in this process's namespace only.
bool UpperFormat::IsLinksOnly(int dirfd) const {
  return GetXattr(dirfd, "", std::string(privileged_ ? "trusted." : "user.") + "layerfs.links_only").has_value();
}

int UpperFormat::SetLinksOnly(int dirfd) const { return SetPrivate(dirfd, "", "layerfs.links_only", "y"); }

void UpperFormat::ClearLinksOnly(int dirfd) const {
  std::string key = std::string(privileged_ ? "trusted." : "user.") + "layerfs.links_only";
  ::removexattr(FdPath(dirfd, "").c_str(), key.c_str());
}

// With xattr_permissions= only the xattr it names, as fuse-overlayfs reads its upper then (an
// upper it wrote also holds user.containers.override_stat copied up from a containers/storage
// lower, which it ignores); otherwise all three, in fuse-overlayfs's order.
std::optional<StatOverride> UpperFormat::Override(int dirfd, const std::string& name) const {
  std::optional<std::string> v = GetXattr(dirfd, name, override_xattr_);
  if (std::string_view(override_xattr_) == kContainersOverride)
    for (const char* key : {kPrivilegedOverride, kUserOverride})
      if (!v) v = GetXattr(dirfd, name, key);
  if (!v) return std::nullopt;
  return ParseOverride(*v);
}

std::optional<StatOverride> UpperFormat::ParseOverride(std::string_view value) {
  // Writers differ in whether the value ends with a NUL; nothing else may follow the mode.
  if (value.ends_with('\0')) value.remove_suffix(1);
  StatOverride o;
  const char* end = value.data() + value.size();
  auto [after_uid, e1] = std::from_chars(value.data(), end, o.uid);
  if (e1 != std::errc() || after_uid == end || *after_uid != ':') return std::nullopt;
  auto [after_gid, e2] = std::from_chars(after_uid + 1, end, o.gid);
  if (e2 != std::errc() || after_gid == end || *after_gid != ':') return std::nullopt;
  auto [after_mode, e3] = std::from_chars(after_gid + 1, end, o.mode, 8);
  if (e3 != std::errc() || after_mode != end) return std::nullopt;
  return o;
}

int UpperFormat::SetOverride(int dirfd, const std::string& name, const StatOverride& o) const {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%u:%u:0%o", o.uid, o.gid, o.mode);
  return SetXattr(dirfd, name, override_xattr_, buf);
}

}  // namespace layerfs
