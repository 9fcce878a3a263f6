// Image model: OCI / Docker schema2 manifests and image configs, as stored in the blob store.
// An image is identified by its config digest (Docker's IMAGE ID). index.json names an OCI
// manifest for every image (docs/docker-media-types.md); an image that arrived with a Docker
// schema2 manifest also keeps that manifest, and its digest is the one a registry knows, so it
// is what `images --digests`, `pull` and `push` use (repo_digest()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"

namespace layerfs {

inline constexpr const char* kOciManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndexType = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciConfigType = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerGzipType = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOciLayerZstdType = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr const char* kOciLayerTarType = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* kDockerManifestType = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerListType = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerConfigType = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kDockerLayerGzipType = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr const char* kDockerLayerTarType = "application/vnd.docker.image.rootfs.diff.tar";
// On the OCI manifest the store makes from a Docker schema2 manifest: the Docker manifest's
// digest (its blob stays in the store). Reverse-domain, as the OCI spec asks of annotations.
inline constexpr const char* kSourceManifestAnnotation = "io.layerfs.source-manifest.digest";

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  nlohmann::json annotations;  // may be null
  nlohmann::json platform;     // index entries only; may be null
};

struct HistoryEntry {
  std::string created;  // RFC 3339
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
};

// One image as stored: manifest + config, both parsed, plus the tags that point at it.
struct Image {
  Digest manifest_digest;  // the manifest index.json names
  std::string manifest_media_type;
  uint64_t manifest_size = 0;
  // The Docker schema2 manifest the image arrived with, when index.json names its OCI
  // conversion; empty digest otherwise.
  Descriptor source_manifest;
  Descriptor config_descriptor;
  std::vector<Descriptor> layers;  // blobs, bottom first
  std::vector<Digest> diff_ids;    // from the config, bottom first
  std::vector<HistoryEntry> history;
  nlohmann::json config;          // the whole config document
  std::vector<std::string> tags;  // normalized references ("docker.io/library/redis:latest")

  const Digest& id() const { return config_descriptor.digest; }
  Digest chain_id() const;  // chain ID of all layers (empty Digest for zero layers)
  // The manifest digest a registry knows: the source manifest's if kept, else manifest_digest.
  const Digest& repo_digest() const { return source_manifest.digest.empty() ? manifest_digest : source_manifest.digest; }
  // The blobs that hold this image, for GC and disk accounting: manifest(s), config, layers.
  std::vector<Digest> blobs() const;
};

// OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
Digest ChainId(const std::vector<Digest>& diff_ids);

// Helpers for the JSON documents (image.cc). Errors (EINVAL) name `what` (a file or digest).
Result<nlohmann::json> ParseJson(std::string_view bytes, const std::string& what);
Result<Descriptor> ParseDescriptor(const nlohmann::json& j, const std::string& what);
nlohmann::json DescriptorJson(const Descriptor& d);
bool IsIndexMediaType(std::string_view media_type);     // OCI index or Docker manifest list
bool IsManifestMediaType(std::string_view media_type);  // OCI or Docker schema2 manifest
// Media type of a manifest-ish document: its "mediaType", else inferred from its shape.
std::string DocumentMediaType(const nlohmann::json& doc);
// Fills manifest_media_type, config_descriptor and layers from a manifest document, and
// source_manifest's digest from its kSourceManifestAnnotation (size 0: not checked here).
Status ParseManifest(std::string_view bytes, const std::string& what, Image* image);
// Fills diff_ids, history and config from a config document; checks the layer count matches.
Status ParseConfig(std::string_view bytes, const std::string& what, Image* image);

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;  // empty: any
};
// "os/arch[/variant]"; empty text: linux/amd64.
Result<Platform> ParsePlatform(std::string_view text);
// The manifest of an OCI index / Docker manifest list that matches the platform.
Result<Descriptor> SelectPlatformManifest(const nlohmann::json& index, const Platform& platform,
                                          const std::string& what);

// The history rows of an image, oldest first, each with the index of the layer it created
// (-1 for empty_layer steps). Without a history, one row per layer (as Docker shows).
std::vector<std::pair<HistoryEntry, int>> HistoryLayers(const Image& image);

// `inspect` output for one image, shaped like `docker image inspect`'s objects.
nlohmann::json InspectJson(const Image& image, uint64_t size);

}  // namespace layerfs
