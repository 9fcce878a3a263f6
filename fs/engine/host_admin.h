// HasHostAdmin: whether this process holds CAP_SYS_ADMIN in the initial user namespace.
//
// That, not euid 0, decides what the kernel allows a mount daemon: trusted.* xattrs (overlay's
// markers), FUSE passthrough backing files. Root inside a user namespace (rootless podman,
// `unshare -r`) is euid 0 without it and must use the user.* forms instead.
#pragma once

namespace layerfs {

bool HasHostAdmin();

}  // namespace layerfs
