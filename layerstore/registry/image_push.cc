#include "layerstore/registry/image_push.h"

#include <atomic>
#include <mutex>
#include <set>

#include "layerstore/base/parallel_jobs.h"
#include "layerstore/registry/image_pull.h"
#include "layerstore/registry/registry_client.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"

namespace layerfs {

namespace {

struct PushJob {
  Descriptor blob;
  std::string id;  // Docker shows the diff_id's short form while pushing
};

// Repositories of the same registry whose local images use the blob: where a mount may work.
std::vector<std::string> MountSources(const std::vector<Image>& images, const Reference& ref, const Digest& blob) {
  std::set<std::string> repos;
  for (const Image& img : images) {
    bool uses = std::any_of(img.layers.begin(), img.layers.end(), [&](const Descriptor& d) { return d.digest == blob; });
    if (!uses) continue;
    for (const std::string& tag : img.tags) {
      auto r = ParseReference(tag);
      if (r.ok() && r->domain == ref.domain && r->path != ref.path) repos.insert(r->path);
    }
  }
  return {repos.begin(), repos.end()};
}

Status PushBlob(RegistryClient& client, const Store& store, const Reference& ref, const PushJob& job,
                const std::vector<std::string>& sources, const TransferCallback& progress) {
  auto say = [&](const std::string& status, uint64_t cur = 0, bool bar = false) {
    if (progress) progress({job.id, status, cur, job.blob.size, bar});
  };
  const std::string what = "blob " + job.blob.digest.str();
  ASSIGN_OR_RETURN(bool exists, client.HasBlob(ref.path, job.blob.digest));
  if (exists) {
    say("Layer already exists");
    return Status::Ok();
  }
  for (const std::string& from : sources) {
    auto mounted = client.MountBlob(ref.path, job.blob.digest, from);
    if (mounted.ok() && *mounted) {
      say("Mounted from " + from);
      return Status::Ok();
    }
  }
  say("Pushing", 0, true);
  RETURN_IF_ERROR(client.UploadBlob(ref.path, job.blob.digest, BlobStore(store).Path(job.blob.digest),
                                    [&](uint64_t done) { say("Pushing", done, true); })
                      .WithContext(what));
  say("Pushed");
  return Status::Ok();
}

std::vector<PushJob> Jobs(const Image& image) {
  std::vector<PushJob> jobs;
  std::set<Digest> seen;
  for (size_t i = image.layers.size(); i-- > 0;)  // Docker lists the top layer first
    if (seen.insert(image.layers[i].digest).second)
      jobs.push_back({image.layers[i], i < image.diff_ids.size() ? image.diff_ids[i].short_id() : image.layers[i].digest.short_id()});
  return jobs;
}

Status PushLayers(RegistryClient& client, const Store& store, const Reference& ref, const Image& image,
                  const PushOptions& options, const TransferCallback& progress) {
  std::vector<PushJob> jobs = Jobs(image);
  for (const PushJob& j : jobs)
    if (progress) progress({j.id, "Preparing", 0, 0, false});
  auto images = ImageStore(store).List();
  std::vector<Image> all = images.ok() ? std::move(*images) : std::vector<Image>();
  std::mutex mu;
  Status first;
  std::atomic<bool> failed{false};
  RunJobs(jobs.size(), options.max_concurrent_uploads, [&](size_t i) {
    if (failed) return;
    Status st = PushBlob(client, store, ref, jobs[i], MountSources(all, ref, jobs[i].blob.digest), progress);
    if (st.ok()) return;
    std::lock_guard lk(mu);
    if (first.ok()) first = st;
    failed = true;
  });
  return first;
}

Status PushConfig(RegistryClient& client, const Store& store, const Reference& ref, const Image& image) {
  const Digest& d = image.config_descriptor.digest;
  ASSIGN_OR_RETURN(bool exists, client.HasBlob(ref.path, d));
  if (exists) return Status::Ok();
  return client.UploadBlob(ref.path, d, BlobStore(store).Path(d)).WithContext("config " + d.str());
}

}  // namespace

Result<PushResult> PushImage(const Store& store, const Reference& ref, const PushOptions& options,
                             const TransferCallback& progress) {
  const std::string what = "push " + ref.String();
  if (!ref.digest.empty()) return Status::Error(EINVAL, what + ": push a tag, not a digest");
  auto image = ImageStore(store).Resolve(ref.String());
  if (!image.ok()) return Status::Error(ENOENT, what + ": an image does not exist locally with the tag " + ref.FamiliarString());
  auto ro = MakeRegistryOptions(ref.domain, options.insecure_registries);
  if (!ro.ok()) return ro.status().WithContext(what);
  ro->chunk_size = options.chunk_size;
  ro->max_attempts = options.max_attempts;
  RegistryClient client(*ro);
  Image source = *image;
  // The manifest the image arrived with, so a registry sees the same digest it served.
  Descriptor pushed = image->source_manifest.digest.empty()
                          ? Descriptor{image->manifest_media_type, image->manifest_digest, 0, nlohmann::json(), nlohmann::json()}
                          : image->source_manifest;
  std::string manifest;
  {
    ASSIGN_OR_RETURN(StoreLock lock, store.LockShared());  // blobs stay while we read them
    if (options.estargz) {
      auto converted = ConvertImageToEstargz(store, *image, options.estargz_options, progress);
      if (!converted.ok()) return converted.status().WithContext(what);
      source = std::move(*converted);
      pushed = Descriptor{source.manifest_media_type, source.manifest_digest, 0, nlohmann::json(), nlohmann::json()};
    }
    auto bytes = BlobStore(store).ReadAll(pushed.digest);
    if (!bytes.ok()) return bytes.status().WithContext(what);
    manifest = std::move(*bytes);
    RETURN_IF_ERROR(PushLayers(client, store, ref, source, options, progress).WithContext(what));
    RETURN_IF_ERROR(PushConfig(client, store, ref, source).WithContext(what));
  }
  auto put = client.PutManifest(ref.path, ref.tag, pushed.media_type, manifest);
  if (!put.ok()) return put.status().WithContext(what);
  return PushResult{*put, manifest.size()};
}

}  // namespace layerfs
