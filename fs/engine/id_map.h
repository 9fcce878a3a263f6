// IdMap: fuse-overlayfs's uidmapping=/gidmapping= ranges, "CONTAINER:HOST:SIZE" triples joined
// by ':' (several triples: "0:100000:65536:..."; containers/storage writes a leading ':').
// As in fuse-overlayfs, the layers on disk keep the image's own (container) ids, and the mount
// shows them as host ids, which a user namespace mapping CONTAINER to HOST turns back into
// the container's; owners a caller sets or creates with (host ids) are stored as container
// ids. An empty map is the identity. Ids outside every range become the overflow id 65534,
// both ways, as in fuse-overlayfs.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "layerstore/base/status.h"

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

  uint32_t Shown(uint32_t stored) const;  // container id -> host id
  uint32_t Stored(uint32_t shown) const;  // host id -> container id

 private:
  std::vector<Range> ranges_;
};

// How owners appear and are written in a mount (fuse-overlayfs's uidmapping/gidmapping and
// squash_to_root/squash_to_uid/squash_to_gid: squashing shows every entry owned by that id).
struct OwnerPolicy {
  IdMap uids, gids;
  std::optional<uint32_t> squash_uid, squash_gid;
  bool identity() const { return uids.empty() && gids.empty() && !squash_uid && !squash_gid; }
  uint32_t ShownUid(uint32_t stored) const { return squash_uid ? *squash_uid : uids.Shown(stored); }
  uint32_t ShownGid(uint32_t stored) const { return squash_gid ? *squash_gid : gids.Shown(stored); }
};

}  // namespace layerfs
