// IdMap: fuse-overlayfs's uidmapping=/gidmapping= ranges, "CONTAINER:HOST:SIZE" triples joined
// by ':' (several triples: "0:1000:1:1:100000:65536"). Owners found on disk (host ids) are shown
// as container ids; owners a caller sets or creates with (container ids) are written as host
// ids. An empty map is the identity. Ids outside every range show as the overflow id 65534 and
// cannot be written (EINVAL), as in a user namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "layerstore/status.h"

namespace layerfs {

class IdMap {
 public:
  static constexpr uint32_t kOverflowId = 65534;
  struct Range {
    uint32_t container = 0, host = 0, size = 0;
  };

  // EINVAL "<what>: ..." on a malformed or overlapping list.
  static Result<IdMap> Parse(std::string_view text, std::string_view what);
  bool empty() const { return ranges_.empty(); }
  const std::vector<Range>& ranges() const { return ranges_; }

  uint32_t ToContainer(uint32_t host) const;               // shown owner
  std::optional<uint32_t> ToHost(uint32_t container) const;  // written owner

 private:
  std::vector<Range> ranges_;
};

// How owners appear and are written in a mount (fuse-overlayfs's uidmapping/gidmapping and
// squash_to_root/squash_to_uid/squash_to_gid: squashing shows every entry owned by that id).
struct OwnerPolicy {
  IdMap uids, gids;
  std::optional<uint32_t> squash_uid, squash_gid;
  bool identity() const { return uids.empty() && gids.empty() && !squash_uid && !squash_gid; }
  uint32_t ShownUid(uint32_t host) const { return squash_uid ? *squash_uid : uids.ToContainer(host); }
  uint32_t ShownGid(uint32_t host) const { return squash_gid ? *squash_gid : gids.ToContainer(host); }
};

}  // namespace layerfs
