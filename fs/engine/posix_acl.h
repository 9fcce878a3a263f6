// PosixAcl: the xattr form of a POSIX ACL (system.posix_acl_access / _default: a version 2
// header, then {tag, perm, id} entries) and the kernel's rule for a new inode's ACL and mode
// from its parent directory's default ACL (posix_acl_create). The FUSE kernel leaves that rule
// to the daemon once it asks for FUSE_CAP_POSIX_ACL (ops_namespace.cc: SetNewOwner).
#pragma once

#include <sys/types.h>

#include <string>

namespace layerfs {

inline constexpr const char* kAclAccessXattr = "system.posix_acl_access";
inline constexpr const char* kAclDefaultXattr = "system.posix_acl_default";

// A new inode of *mode (its type and the creator's permission bits, not umasked) under a
// directory whose default ACL is `default_acl`: *mode becomes the inode's mode and
// *access_acl its access ACL, "" when the result is equivalent to the mode bits (the kernel
// stores none then). false: default_acl is malformed (the caller falls back to the umask).
bool InheritDefaultAcl(const std::string& default_acl, mode_t* mode, std::string* access_acl);

}  // namespace layerfs
