// ContainerCommit: `layerfs diff` and `layerfs commit` as library calls on a store.
// Commit = the container's upper as a new gzip layer (fs/container/commit_layer.h) in the blob store,
// unpacked into layers/ at once (so mounting the new image reuses it), then a child image of
// the container's image (every lower layer shared) with a history entry. A mounted container
// may be committed: its mount is synced first, as `docker commit` does (no pause).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fs/container/upper_changes.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct CommitOptions {
  std::string ref;                   // tag for the new image; empty: dangling
  std::string comment;               // -m
  std::string author;                // -a
  std::vector<std::string> changes;  // -c: Dockerfile instructions (CMD, ENTRYPOINT, ENV, ...)
};

Result<std::vector<UpperChange>> DiffContainer(const Store& store, const ContainerRecord& container);
Result<Image> CommitContainer(const Store& store, const ContainerRecord& container, const CommitOptions& options);

// Applies `docker commit --change` instructions to an image config's "config" object and
// returns the keys to replace: CMD, ENTRYPOINT (JSON or shell form), ENV, LABEL, EXPOSE, VOLUME,
// WORKDIR, USER, STOPSIGNAL. EINVAL "unsupported --change ..." for anything else.
Result<nlohmann::json> ConfigChanges(const nlohmann::json& base_config, const std::vector<std::string>& changes);

}  // namespace layerfs
