// LazyImage: an image in a registry made mountable before its eStargz layers have arrived
// (`layerfs mount --lazy`, docs/lazy-pull.md). Pull() fetches manifest and config as `layerfs
// pull` does (image_pull.h), opens a LazyLayer (footer and TOC only) for each eStargz layer
// the store lacks (EBUSY, before anything else is pulled, when another process owns one), and
// pulls as `pull` does every layer without the TOC digest annotation, and stores manifest
// and config (untagged: a container names them, the collectors keep what they use).
// Complete() completes the lazy layers, one thread per layer sharing one FetchGate (at most
// `jobs` background requests for the whole image, one while a reader fetches), in the process
// that calls it (a mount's daemon, a fork of the opener: it records itself as their owner),
// and only then tags the image: it appears in `layerfs images` once every layer is ordinary,
// never before.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"
#include "layerstore/lazy/lazy_layer.h"
#include "layerstore/registry/image_pull.h"

namespace layerfs {

struct LazyPullOptions {
  Platform platform;
  size_t max_concurrent_downloads = 3;           // the eager layers, as pull
  std::vector<std::string> insecure_registries;  // host[:port] allowed over plain http
  int max_attempts = 5;                          // per request (RegistryOptions): bounds a reader's wait
  std::chrono::milliseconds backoff{200};
  LazyLayerOptions layer;
};

class LazyImage {
 public:
  static Result<std::unique_ptr<LazyImage>> Pull(const Store& store, const Reference& ref,
                                                 const LazyPullOptions& options, const TransferCallback& progress);

  const Image& image() const { return remote_.image; }
  const std::string& ref() const { return ref_; }
  // The lazy layer at position i of image().layers; null for a layer already ordinary.
  LazyLayer* layer(size_t i) const { return by_position_[i].get(); }
  // Completes every lazy layer (prefetch files first, see LazyLayer::Complete), then records
  // the image. The first failure is returned once every layer has stopped.
  Status Complete();
  LazyLayerStats stats() const;  // summed over the lazy layers

 private:
  LazyImage(const Store& store, std::unique_ptr<RegistryClient> client)
      : store_(store), client_(std::move(client)) {}
  Status OpenLayers(LazyLayerOptions options);

  Store store_;
  std::unique_ptr<RegistryClient> client_;  // outlives the layers (declared first)
  RemoteImage remote_;
  std::string ref_;
  std::vector<std::shared_ptr<LazyLayer>> by_position_;  // shared: an image may list a blob twice
  std::vector<std::shared_ptr<LazyLayer>> unique_;
};

}  // namespace layerfs
