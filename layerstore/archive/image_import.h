// ImportRootfs: `layerfs import`, Docker's `docker import` of a rootfs tarball (plain, gzip or
// zstd). The file becomes one layer blob as is; its diff_id comes from unpacking it (which also
// rejects a bad or hostile tar before anything is stored); the image config records history
// "Imported from <file>" (or the given message) and the tag.
#pragma once

#include <filesystem>
#include <string>

#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct ImportOptions {
  std::string ref;      // "name[:tag]"; empty: untagged
  std::string message;  // history comment; empty: "Imported from <file>"
};

Result<Image> ImportRootfs(const Store& store, const std::filesystem::path& tarball, const ImportOptions& options);

}  // namespace layerfs
