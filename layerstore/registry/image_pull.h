// PullImage: `layerfs pull`. Resolves a reference on its registry, picks the platform's
// manifest from an index, fetches the config, then the layers in parallel (bounded), each
// streamed into the blob store and unpacked as it arrives (layer_fetch.h), and finally records
// config, manifest and tag. The image appears (ImageStore::Add) only after every blob and
// layer is verified and published: an interrupted or failed pull leaves no image and no tag.
// Layers completed before a failure stay in the store, verified, and the next pull reuses them.
//
// Concurrency: a shared store lock is held while transferring, so no other process sweeps our
// tmp/ files; it is dropped before the tag is written under ImageStore's exclusive lock.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/oci/image.h"
#include "layerstore/oci/reference.h"
#include "layerstore/registry/registry_client.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct PullOptions {
  Platform platform;
  size_t max_concurrent_downloads = 3;
  std::vector<std::string> insecure_registries;  // host[:port] allowed over plain http
  int max_attempts = 5;                          // per request (see RegistryOptions)
  std::chrono::milliseconds backoff{200};
};

struct PullResult {
  Digest digest;            // what the reference resolved to (an index's digest for multi-platform)
  Digest manifest_digest;   // the platform's manifest, as recorded in the store
  bool up_to_date = false;  // the tag already named this image and nothing was fetched
};

// Client options for `registry`: credentials from the Docker config, insecure flag from the list.
Result<RegistryOptions> MakeRegistryOptions(const std::string& registry, const std::vector<std::string>& insecure);

// The steps of PullImage, for a pull that fetches some layers otherwise (mount --lazy).
// RemoteImage: an image in a registry with its manifest and config fetched and verified.
struct RemoteImage {
  Reference ref;
  Digest digest;             // what the reference resolved to
  FetchedManifest manifest;  // the platform's
  std::string config;        // empty until FetchRemoteConfig
  Image image;               // the manifest parsed; with FetchRemoteConfig, the config too
};
Result<RemoteImage> FetchRemoteManifest(RegistryClient& client, const Reference& ref, const Platform& platform);
Status FetchRemoteConfig(RegistryClient& client, RemoteImage* image);
// Fetches and unpacks, as `pull` does, the image's layers (by position) for which want() holds
// and that the store lacks; a shared store lock is held meanwhile.
Status PullLayers(const Store& store, RegistryClient& client, const RemoteImage& image,
                  const std::function<bool(size_t)>& want, size_t concurrency, const TransferCallback& progress);
// Stores config and manifest in blobs/, without tagging: a container can name the image
// (and the collectors keep what it uses) before its layers have all arrived (mount --lazy).
Status StoreImageBlobs(const Store& store, const RemoteImage& image);
// Stores config and manifest and tags the image: it appears. Every layer must be in the store.
Status RecordImage(const Store& store, const RemoteImage& image);

Result<PullResult> PullImage(const Store& store, const Reference& ref, const PullOptions& options,
                             const TransferCallback& progress);

}  // namespace layerfs
