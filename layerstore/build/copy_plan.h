// CopyPlan: what one COPY or ADD puts into its layer, worked out before anything is written:
// every entry with its final path and metadata (owner after --chown, mode after --chmod), the
// parent directories of the destination, and a content hash over all of it (bytes, type,
// mode, uid/gid, path, link target) that makes the step's cache key. File mtimes are kept in
// the layer but left out of the hash, as Docker does.
//
// Sources are relative to the context (a leading '/' is dropped; nothing may leave the
// context), may be wildcards (per path component, fnmatch), and files .dockerignore excludes
// do not exist. A directory source copies its contents. ADD unpacks a local tar archive
// (plain or compressed) into the destination and refuses URLs.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/build/chain_view.h"
#include "layerstore/build/dockerignore.h"
#include "layerstore/build/layer_tar_writer.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct CopyRequest {
  std::filesystem::path context;
  const DockerIgnore* ignore = nullptr;
  std::vector<std::string> sources;
  std::string dest;                  // absolute in the image (WORKDIR already applied); trailing '/' = directory
  std::optional<uint32_t> uid, gid;  // --chown, resolved; unset: 0:0
  std::optional<uint32_t> chmod;     // --chmod
  bool add = false;                  // ADD: unpack local archives, refuse URLs
};

struct CopyEntry {
  EntryType type = EntryType::kRegular;  // kRegular, kDirectory or kSymlink
  TarEntryMeta meta;
  std::filesystem::path source;  // regular files
  std::string link_target;       // symlinks
};

struct CopyPlan {
  std::map<std::string, CopyEntry> entries;  // by path in the layer ("app/x"), parents first
  struct Archive {
    std::filesystem::path source;
    std::string dest_dir;  // layer path the archive unpacks into
  };
  std::vector<Archive> archives;  // ADD of local tars, written after the entries
  std::string content_hash;       // hex sha256
};

Result<CopyPlan> PlanCopy(const CopyRequest& request, const ChainView& image);
// Writes the plan as one layer blob (entries, then each archive's entries under its dest).
Result<LayerBlob> WriteCopyLayer(const Store& store, const CopyPlan& plan);

}  // namespace layerfs
