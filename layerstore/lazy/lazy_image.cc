#include "layerstore/lazy/lazy_image.h"

#include <map>
#include <mutex>
#include <thread>

#include "layerstore/estargz/estargz_toc.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

bool IsEstargz(const Descriptor& d) {
  return d.annotations.is_object() && d.annotations.contains(kEstargzTocDigestAnnotation);
}

}  // namespace

Result<std::unique_ptr<LazyImage>> LazyImage::Pull(const Store& store, const Reference& ref,
                                                   const LazyPullOptions& options, const TransferCallback& progress) {
  const std::string what = "lazy pull " + ref.String();
  auto ro = MakeRegistryOptions(ref.domain, options.insecure_registries);
  if (!ro.ok()) return ro.status().WithContext(what);
  ro->max_attempts = options.max_attempts;
  ro->backoff = options.backoff;
  std::unique_ptr<LazyImage> lazy(new LazyImage(store, std::make_unique<RegistryClient>(*ro)));
  lazy->ref_ = ref.String();
  auto remote = FetchRemoteManifest(*lazy->client_, ref, options.platform);
  if (!remote.ok()) return remote.status().WithContext(what);
  lazy->remote_ = std::move(*remote);
  RETURN_IF_ERROR(FetchRemoteConfig(*lazy->client_, &lazy->remote_).WithContext(what));
  const Image& image = lazy->remote_.image;
  if (image.layers.size() != image.diff_ids.size())
    return Status::Error(EINVAL, what + ": the config lists " + std::to_string(image.diff_ids.size()) +
                                     " diff_ids for " + std::to_string(image.layers.size()) + " layers");
  // The lazy layers first: one another process owns fails the pull before it changed the store.
  RETURN_IF_ERROR(lazy->OpenLayers(options.layer).WithContext(what));
  auto eager = [&image](size_t i) { return !IsEstargz(image.layers[i]); };
  RETURN_IF_ERROR(PullLayers(store, *lazy->client_, lazy->remote_, eager, options.max_concurrent_downloads, progress)
                      .WithContext(what));
  // The container made next names the manifest: `system prune` keeps what its image uses.
  RETURN_IF_ERROR(StoreImageBlobs(store, lazy->remote_).WithContext(what));
  return lazy;
}

// EEXIST from Open: the layer is ordinary already (pulled, or completed by another mount).
Status LazyImage::OpenLayers(LazyLayerOptions options) {
  if (!options.gate) options.gate = std::make_shared<FetchGate>(options.jobs);  // one link, one gate
  const Image& image = remote_.image;
  std::map<Digest, std::shared_ptr<LazyLayer>> opened;
  by_position_.resize(image.layers.size());
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (!IsEstargz(image.layers[i])) continue;
    auto it = opened.find(image.diff_ids[i]);
    if (it == opened.end()) {
      auto layer = LazyLayer::Open(store_, *client_, remote_.ref.path, image.layers[i], image.diff_ids[i], options);
      if (!layer.ok() && layer.status().code() != EEXIST) return layer.status();
      std::shared_ptr<LazyLayer> shared = layer.ok() ? std::move(*layer) : nullptr;
      it = opened.emplace(image.diff_ids[i], shared).first;
      if (shared) unique_.push_back(shared);
    }
    by_position_[i] = it->second;
  }
  return Status::Ok();
}

Status LazyImage::Complete() {
  std::mutex mu;
  Status first;
  std::vector<std::thread> threads;
  for (const auto& layer : unique_) layer->RecordOwnerPid();  // a mount's daemon is a fork of the opener
  for (const auto& layer : unique_)
    threads.emplace_back([&, layer] {
      Status st = layer->Complete();
      std::lock_guard guard(mu);
      if (first.ok() && !st.ok()) first = st;
    });
  for (auto& t : threads) t.join();
  RETURN_IF_ERROR(first.WithContext("complete " + ref_));
  return RecordImage(store_, remote_).WithContext("complete " + ref_);
}

LazyLayerStats LazyImage::stats() const {
  LazyLayerStats sum;
  for (const auto& layer : unique_) {
    LazyLayerStats s = layer->stats();
    sum.chunks += s.chunks;
    sum.verified_chunks += s.verified_chunks;
    sum.requests += s.requests;
    sum.fetched_bytes += s.fetched_bytes;
  }
  return sum;
}

}  // namespace layerfs
