// UserDb: users and groups as an image's /etc/passwd and /etc/group define them, for USER (who
// RUN runs as) and COPY --chown. Names resolve only through the image's files, never the
// host's; numeric ids need no files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/base/status.h"
#include "layerstore/build/chain_view.h"

namespace layerfs {

struct UserIdentity {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, from /etc/group membership
  std::string home = "/";
};

struct Ownership {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// "", "name", "uid", "name:group", "uid:gid" (Docker's USER). "" is root.
Result<UserIdentity> ResolveUser(const ChainView& image, std::string_view spec);
// "user[:group]" for --chown; without a group the gid is the uid's number, as Docker does.
Result<Ownership> ResolveChown(const ChainView& image, std::string_view spec);

// The parsing behind both, on file contents (exposed for tests).
Result<UserIdentity> ResolveUserIn(std::string_view passwd, std::string_view group, std::string_view spec);
Result<Ownership> ResolveChownIn(std::string_view passwd, std::string_view group, std::string_view spec);

}  // namespace layerfs
