#include "layerstore/registry/image_pull.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "layerstore/base/parallel_jobs.h"
#include "layerstore/registry/layer_fetch.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr uint64_t kMaxConfigSize = 64u << 20;

struct LayerJob {
  Descriptor blob;
  Digest diff_id;
};

// The platform's manifest: the reference's own, or the one an index lists for the platform.
Result<FetchedManifest> ResolveManifest(RegistryClient& client, const Reference& ref, const Platform& platform,
                                        const FetchedManifest& top) {
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(top.bytes, "manifest " + top.digest.str()));
  if (!IsIndexMediaType(DocumentMediaType(doc))) return top;
  ASSIGN_OR_RETURN(Descriptor d, SelectPlatformManifest(doc, platform, "index " + top.digest.str()));
  return client.GetManifest(ref.path, d.digest.str());
}

Result<std::string> FetchConfig(RegistryClient& client, const std::string& repo, const Descriptor& d) {
  if (d.size > kMaxConfigSize) return Status::Error(EFBIG, "config " + d.digest.str() + " is too large");
  std::string bytes;
  RETURN_IF_ERROR(client.GetBlob(repo, d.digest, d.size, [&](const char* data, size_t len) {
                          bytes.append(data, len);
                          return Status::Ok();
                        })
                      .WithContext("config " + d.digest.str()));
  Digest got = Sha256Of(bytes);
  if (got != d.digest) return Status::Error(EINVAL, "config " + d.digest.str() + ": digest mismatch (got " + got.str() + ")");
  return bytes;
}

std::vector<LayerJob> UniqueLayers(const Image& image) {
  std::vector<LayerJob> jobs;
  std::set<Digest> seen;
  for (size_t i = 0; i < image.layers.size(); ++i)
    if (seen.insert(image.layers[i].digest).second) jobs.push_back({image.layers[i], image.diff_ids[i]});
  return jobs;
}

bool AllPresent(const Store& store, const Image& image) {
  BlobStore blobs(store);
  LayerStore layers(store);
  if (image.diff_ids.size() != image.layers.size() || !blobs.Has(image.config_descriptor.digest)) return false;
  for (size_t i = 0; i < image.layers.size(); ++i)
    if (!blobs.Has(image.layers[i].digest) || !layers.Has(image.diff_ids[i])) return false;
  return true;
}

// The tag already names this manifest (as the registry serves it: a Docker schema2 manifest
// is stored as its OCI conversion) and everything it needs is in the store.
bool UpToDate(const Store& store, const Reference& ref, const Digest& manifest_digest) {
  auto have = ImageStore(store).Resolve(ref.String());
  return have.ok() && have->repo_digest() == manifest_digest && AllPresent(store, *have);
}

Status FetchLayers(const Store& store, RegistryClient& client, const std::string& repo,
                   const std::vector<LayerJob>& jobs, size_t concurrency, const TransferCallback& progress) {
  for (const LayerJob& j : jobs)
    if (progress) progress({j.blob.digest.short_id(), "Pulling fs layer", 0, 0, false});
  std::atomic<bool> cancel{false};
  std::mutex mu;
  Status first;
  RunJobs(jobs.size(), concurrency, [&](size_t i) {
    if (cancel) return;
    Status st = FetchLayer(store, client, repo, jobs[i].blob, jobs[i].diff_id, cancel, progress);
    if (st.ok()) return;
    std::lock_guard lk(mu);
    // The first real failure wins over the cancellations it causes.
    if (first.ok() || (first.code() == ECANCELED && st.code() != ECANCELED)) first = st;
    cancel = true;
  });
  return first;
}

}  // namespace

Result<RegistryOptions> MakeRegistryOptions(const std::string& registry, const std::vector<std::string>& insecure) {
  RegistryOptions o;
  o.registry = registry;
  o.insecure = std::find(insecure.begin(), insecure.end(), registry) != insecure.end();
  ASSIGN_OR_RETURN(o.credentials, LoadCredentials(registry));
  return o;
}

Result<PullResult> PullImage(const Store& store, const Reference& ref, const PullOptions& options,
                             const TransferCallback& progress) {
  const std::string what = "pull " + ref.String();
  auto ro = MakeRegistryOptions(ref.domain, options.insecure_registries);
  if (!ro.ok()) return ro.status().WithContext(what);
  ro->max_attempts = options.max_attempts;
  ro->backoff = options.backoff;
  RegistryClient client(*ro);

  auto top = client.GetManifest(ref.path, ref.digest.empty() ? ref.tag : ref.digest);
  if (!top.ok()) return top.status().WithContext(what);
  auto manifest = ResolveManifest(client, ref, options.platform, *top);
  if (!manifest.ok()) return manifest.status().WithContext(what);
  Image image;
  image.manifest_digest = manifest->digest;
  RETURN_IF_ERROR(ParseManifest(manifest->bytes, "manifest " + manifest->digest.str(), &image).WithContext(what));
  PullResult result{top->digest, manifest->digest, false};
  if (UpToDate(store, ref, manifest->digest)) {
    result.up_to_date = true;
    return result;
  }

  auto config = FetchConfig(client, ref.path, image.config_descriptor);
  if (!config.ok()) return config.status().WithContext(what);
  RETURN_IF_ERROR(ParseConfig(*config, "config " + image.config_descriptor.digest.str(), &image).WithContext(what));
  {
    ASSIGN_OR_RETURN(StoreLock lock, store.LockShared());
    size_t concurrency = std::max<size_t>(options.max_concurrent_downloads, 1);
    RETURN_IF_ERROR(FetchLayers(store, client, ref.path, UniqueLayers(image), concurrency, progress).WithContext(what));
    BlobStore blobs(store);
    RETURN_IF_ERROR(blobs.PutBytes(*config, image.config_descriptor.digest).status().WithContext(what));
    RETURN_IF_ERROR(blobs.PutBytes(manifest->bytes, manifest->digest).status().WithContext(what));
  }
  RETURN_IF_ERROR(ImageStore(store).Add(manifest->digest, ref.String()).WithContext(what));
  return result;
}

}  // namespace layerfs
