// OciConversion: the OCI form of Docker schema2 documents, so that every tag in the store's
// index.json names an OCI manifest (skopeo 1.9 looks a tag up only among OCI manifest and index
// descriptors; docs/docker-media-types.md). Config and layer blobs are not touched: the image
// ID and the layers stay the same, only the manifest is new.
#pragma once

#include <string>
#include <string_view>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

// The OCI media type for a Docker one (manifest, config, layers, foreign layers); any other
// type is returned as it is.
std::string OciMediaType(std::string_view media_type);

// The OCI manifest for a Docker schema2 manifest: every field kept, media types made OCI, and
// the Docker manifest's digest in the kSourceManifestAnnotation annotation (image.h).
// Deterministic: the same Docker manifest always gives the same bytes. `what` names the input
// in errors (EINVAL: not a Docker schema2 manifest).
Result<std::string> OciManifestFromDocker(std::string_view docker_manifest, const Digest& docker_digest,
                                          const std::string& what);

}  // namespace layerfs
