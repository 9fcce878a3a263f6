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

Result<RemoteImage> FetchRemoteManifest(RegistryClient& client, const Reference& ref, const Platform& platform) {
  ASSIGN_OR_RETURN(FetchedManifest top, client.GetManifest(ref.path, ref.digest.empty() ? ref.tag : ref.digest));
  RemoteImage remote{ref, top.digest, {}, {}, {}};
  ASSIGN_OR_RETURN(remote.manifest, ResolveManifest(client, ref, platform, top));
  remote.image.manifest_digest = remote.manifest.digest;
  RETURN_IF_ERROR(ParseManifest(remote.manifest.bytes, "manifest " + remote.manifest.digest.str(), &remote.image));
  return remote;
}

Status FetchRemoteConfig(RegistryClient& client, RemoteImage* remote) {
  const Descriptor& d = remote->image.config_descriptor;
  ASSIGN_OR_RETURN(remote->config, FetchConfig(client, remote->ref.path, d));
  return ParseConfig(remote->config, "config " + d.digest.str(), &remote->image);
}

Status PullLayers(const Store& store, RegistryClient& client, const RemoteImage& remote,
                  const std::function<bool(size_t)>& want, size_t concurrency, const TransferCallback& progress) {
  ASSIGN_OR_RETURN(StoreLock lock, store.LockShared());
  Image wanted = remote.image;
  wanted.layers.clear();
  wanted.diff_ids.clear();
  for (size_t i = 0; i < remote.image.layers.size() && i < remote.image.diff_ids.size(); ++i) {
    if (!want(i)) continue;
    wanted.layers.push_back(remote.image.layers[i]);
    wanted.diff_ids.push_back(remote.image.diff_ids[i]);
  }
  return FetchLayers(store, client, remote.ref.path, UniqueLayers(wanted), std::max<size_t>(concurrency, 1), progress);
}

Status StoreImageBlobs(const Store& store, const RemoteImage& remote) {
  ASSIGN_OR_RETURN(StoreLock lock, store.LockShared());
  BlobStore blobs(store);
  RETURN_IF_ERROR(blobs.PutBytes(remote.config, remote.image.config_descriptor.digest).status());
  return blobs.PutBytes(remote.manifest.bytes, remote.manifest.digest).status();
}

Status RecordImage(const Store& store, const RemoteImage& remote) {
  RETURN_IF_ERROR(StoreImageBlobs(store, remote));
  return ImageStore(store).Add(remote.manifest.digest, remote.ref.String());
}

Result<PullResult> PullImage(const Store& store, const Reference& ref, const PullOptions& options,
                             const TransferCallback& progress) {
  const std::string what = "pull " + ref.String();
  auto ro = MakeRegistryOptions(ref.domain, options.insecure_registries);
  if (!ro.ok()) return ro.status().WithContext(what);
  ro->max_attempts = options.max_attempts;
  ro->backoff = options.backoff;
  RegistryClient client(*ro);

  auto remote = FetchRemoteManifest(client, ref, options.platform);
  if (!remote.ok()) return remote.status().WithContext(what);
  PullResult result{remote->digest, remote->manifest.digest, false};
  if (UpToDate(store, ref, remote->manifest.digest)) {
    result.up_to_date = true;
    return result;
  }
  RETURN_IF_ERROR(FetchRemoteConfig(client, &*remote).WithContext(what));
  auto all = [](size_t) { return true; };
  RETURN_IF_ERROR(PullLayers(store, client, *remote, all, options.max_concurrent_downloads, progress).WithContext(what));
  RETURN_IF_ERROR(RecordImage(store, *remote).WithContext(what));
  return result;
}

}  // namespace layerfs
