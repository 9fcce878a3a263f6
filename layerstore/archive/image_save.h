// SaveImages: `layerfs save`. Writes stored images, their original blobs byte for byte (so a
// load of the file gives the same manifest digest), as
//   docker-archive: Docker 25+'s layout, which older and newer `docker load` and skopeo read:
//     manifest.json (Config, RepoTags, Layers as blobs/sha256/<hex> paths), repositories,
//     oci-layout, index.json and blobs/sha256/<hex>;
//   oci-archive: a tar of an OCI image layout; each tag is an index entry whose
//     org.opencontainers.image.ref.name (and io.containerd.image.name) is the full reference.
// The output file is written beside its final name and renamed into place when complete.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/estargz/estargz_convert.h"
#include "layerstore/store/store.h"

namespace layerfs {

enum class SaveFormat { kDockerArchive,
                        kOciArchive };

Result<SaveFormat> ParseSaveFormat(std::string_view name);  // "docker-archive" | "oci-archive"
// names: references or image IDs; a reference saves under that tag, an ID untagged.
// estargz (may be null): save each image's eStargz conversion (estargz_convert.h) under its names.
Status SaveImages(const Store& store, const std::vector<std::string>& names, const std::filesystem::path& output,
                  SaveFormat format, const EstargzOptions* estargz = nullptr);

}  // namespace layerfs
