#include "fs/container/container_ops.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <string_view>

#include "fs/engine/read_recorder.h"
#include "fs/index/merged_index.h"
#include "fs/mount/fuse_mount.h"
#include "fs/mount/lazy_image_lowers.h"
#include "fs/mount/mount.h"
#include "layerstore/lazy/partial_image.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

bool Alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

Result<Image> ImageOf(const Store& store, const MountContainerRequest& req, const ContainerRecord* existing) {
  ImageStore images(store);
  if (existing != nullptr) {
    auto image = images.Resolve(existing->image_id.str());
    if (!image.ok()) return Status::Error(ENOENT, "image of container " + existing->name + " is gone: " + existing->image_ref);
    return image;
  }
  return images.Resolve(req.image);
}

// The image a mount serves lazily: --lazy's reference; or, remounting a container whose image a
// lazy mount never finished (its lazy.json, the image not in the store), that image again from
// its registry, whose layers resume from lazy/. Null: the mount is not lazy.
Result<std::shared_ptr<LazyImage>> PullLazily(const Store& store, const MountContainerRequest& req,
                                              const ContainerRecord* existing, LazyPullOptions* options) {
  std::string ref_text = req.image;
  if (existing != nullptr) {
    if (req.lazy) return Status::Error(EEXIST, "container " + existing->name + " exists: --lazy makes a new one");
    auto partial = ReadPartialImage(ContainerStore(store).partial_image_file(existing->id));
    if (!partial.ok() || ImageStore(store).Resolve(existing->image_id.str()).ok()) return std::shared_ptr<LazyImage>();
    ref_text = partial->ref;
    for (const auto& host : partial->insecure_registries) options->insecure_registries.push_back(host);
  } else if (!req.lazy) {
    return std::shared_ptr<LazyImage>();
  }
  ASSIGN_OR_RETURN(Reference ref, ParseReference(ref_text));
  ASSIGN_OR_RETURN(std::shared_ptr<LazyImage> lazy, LazyImage::Pull(store, ref, *options, {}));
  if (existing != nullptr && lazy->image().id() != existing->image_id)
    return Status::Error(ESTALE, ref_text + " now names another image than container " + existing->name +
                                     "'s; mount --lazy it as a new container");
  return lazy;
}

// Unpacks layers that are missing (an image loaded but never mounted has them already; this
// covers layers removed by a prune) and builds the chain's merged index if not cached.
Status PrepareLayers(const Store& store, const Image& image) {
  LayerStore layers(store);
  std::vector<LayerRequest> missing;
  for (size_t i = 0; i < image.diff_ids.size(); ++i)
    if (!layers.Has(image.diff_ids[i]) && i < image.layers.size())
      missing.push_back({image.layers[i].digest, image.diff_ids[i]});
  if (!missing.empty()) RETURN_IF_ERROR(layers.Ensure(missing));
  auto index = MergedIndex::LoadOrBuild(store, image.diff_ids);
  return index.ok() ? Status::Ok() : index.status();
}

// A whole unsigned decimal number, nothing else ("threads=8").
bool ParseCount(std::string_view text, unsigned* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

Status ApplyOptions(const std::vector<std::string>& options, MountConfig* c) {
  for (const auto& opts : options) {
    size_t start = 0;
    while (start <= opts.size()) {
      size_t comma = opts.find(',', start);
      std::string o = opts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? opts.size() + 1 : comma + 1;
      if (o.empty()) continue;
      if (o == "allow_other") c->allow_other = true;
      else if (o == "default_permissions")
        c->default_permissions = true;
      else if (o == "no_default_permissions")
        c->default_permissions = false;
      else if (o == "debug")
        c->debug = true;
      else if (o == "volatile")
        c->sync_upper = false;
      else if (o == "no_open")
        c->no_open = true;
      else if (c->flags.Parse(o))
        continue;  // ro, nosuid, noatime, ...: fs/mount/mount_flags.h
      else if (o.rfind("threads=", 0) == 0) {
        if (!ParseCount(std::string_view(o).substr(8), &c->threads))
          return Status::Error(EINVAL, "mount option \"" + o + "\": not a number of threads");
      } else if (o.rfind("fsname=", 0) == 0)
        c->fsname = o.substr(7);
      else
        return Status::Error(EINVAL, "unknown mount option \"" + o + "\"");
    }
  }
  return Status::Ok();
}

// Exists while a -o volatile mount of the container may hold writes not yet on disk.
std::filesystem::path VolatileMarker(const ContainerStore& containers, const std::string& id) {
  return containers.dir(id) / "volatile";
}

void ClearMount(const Store& store, const std::string& id, int pid) {
  ContainerStore containers(store);
  auto r = containers.Get(id);
  if (!r.ok() || (pid != 0 && r->daemon_pid != pid && r->daemon_pid != 0)) return;
  r->mountpoint.clear();
  r->daemon_pid = 0;
  containers.Update(*r);
}

}  // namespace

const char* ContainerStateName(ContainerState s) {
  switch (s) {
    case ContainerState::kMounted: return "Mounted";
    case ContainerState::kStale: return "Stale";
    default: return "Unmounted";
  }
}

ContainerState StateOf(const ContainerRecord& r) {
  if (r.mountpoint.empty()) return ContainerState::kUnmounted;
  struct stat st;
  if (!Alive(r.daemon_pid) || ::stat(r.mountpoint.c_str(), &st) != 0) return ContainerState::kStale;
  return ContainerState::kMounted;
}

Result<ContainerRecord> MountContainer(const Store& store, const MountContainerRequest& req) {
  ContainerStore containers(store);
  std::optional<ContainerRecord> existing;
  if (!req.name.empty()) {
    if (auto r = containers.Get(req.name); r.ok()) existing = *r;
  }
  if (!existing && req.image.empty()) return Status::Error(ENOENT, "no such container: " + req.name);
  if (existing && StateOf(*existing) == ContainerState::kStale)
    return Status::Error(EBUSY, "container " + existing->name + " is still recorded as mounted at " +
                                    existing->mountpoint + " but its daemon is gone: run layerfs umount " +
                                    existing->name + " first");
  if (existing && StateOf(*existing) != ContainerState::kUnmounted)
    return Status::Error(EBUSY, "container " + existing->name + " is already mounted at " + existing->mountpoint);
  // As overlayfs with work/incompat/volatile: an upper that a volatile mount did not end
  // cleanly may have lost writes without a trace, so it is not served again.
  std::error_code exists_ec;
  if (existing && std::filesystem::exists(VolatileMarker(containers, existing->id), exists_ec))
    return Status::Error(EUCLEAN, "container " + existing->name +
                                      " was mounted with -o volatile and not unmounted "
                                      "cleanly, so its changes may be incomplete: remove it (layerfs rm " +
                                      existing->name +
                                      "), or delete " + VolatileMarker(containers, existing->id).string() +
                                      " if the host did not crash");
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(req.dir, ec);
  RETURN_IF_ERROR(CheckMountpoint(dir));
  MountConfig config;
  config.allow_other = ::geteuid() == 0;
  RETURN_IF_ERROR(ApplyOptions(req.options, &config));  // before a record exists: a bad -o changes nothing
  if (config.no_open && !req.record_reads.empty())      // it records at OPEN, which no_open takes away
    return Status::Error(EINVAL, "--record-reads needs the opens that -o no_open leaves out: use one or the other");
  if (!req.record_reads.empty()) {  // the daemon runs in /: an absolute path, checked here
    config.record_reads = std::filesystem::absolute(req.record_reads, ec);
    RETURN_IF_ERROR(ReadRecorder::Create(config.record_reads).status());
  }
  Image image;
  LazyPullOptions lazy_options = req.lazy_options;
  // The daemon logs each failure once, naming what failed (a read's, LazyImageLowers; the
  // background fetch's end): LazyLayer's own line for a refused chunk would be a second one.
  lazy_options.layer.log = [](const std::string&) {};
  ASSIGN_OR_RETURN(std::shared_ptr<LazyImage> lazy, PullLazily(store, req, existing ? &*existing : nullptr, &lazy_options));
  if (lazy) {
    image = lazy->image();
    auto lowers = std::make_shared<LazyImageLowers>(lazy);
    config.lazy = lowers;
    config.after_mount = [lowers] { lowers->CompleteInBackground(); };
  } else {
    ASSIGN_OR_RETURN(image, ImageOf(store, req, existing ? &*existing : nullptr));
    RETURN_IF_ERROR(PrepareLayers(store, image));
  }
  ContainerRecord record;
  if (existing) {
    record = *existing;
  } else {
    ASSIGN_OR_RETURN(record, containers.Create(image, req.image, req.name));
  }
  if (lazy) {  // what images and ps show until the image is recorded
    Status st = WritePartialImage(containers.partial_image_file(record.id), PartialImage::Of(*lazy, lazy_options));
    if (!st.ok() && !existing) (void)containers.Remove(record.id);
    RETURN_IF_ERROR(st);
  }

  config.store_root = store.root();
  config.layers = image.diff_ids;
  config.upper_dir = containers.upper_dir(record.id);
  config.work_dir = containers.work_dir(record.id);
  config.mountpoint = dir;
  config.volatile_marker = VolatileMarker(containers, record.id);

  record.mountpoint = dir.string();
  if (req.foreground) {
    record.daemon_pid = ::getpid();
    RETURN_IF_ERROR(containers.Update(record));
    Status st = RunMountDaemon(config, -1);
    ClearMount(store, record.id, record.daemon_pid);
    RETURN_IF_ERROR(st);
    record.mountpoint.clear();
    record.daemon_pid = 0;
    return record;
  }
  std::string id = record.id;
  auto pid = SpawnMountDaemon(config, containers.dir(record.id) / "daemon.log",
                              [&store, id] { ClearMount(store, id, ::getpid()); });
  if (!pid.ok()) return pid.status();
  record.daemon_pid = *pid;
  RETURN_IF_ERROR(containers.Update(record));
  return record;
}

Status UnmountContainer(const Store& store, const std::string& dir_or_name) {
  ContainerStore containers(store);
  std::error_code ec;
  std::string abs = std::filesystem::absolute(dir_or_name, ec).lexically_normal().string();
  if (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  std::optional<ContainerRecord> record;
  for (const auto& c : containers.List())
    if (!c.mountpoint.empty() && c.mountpoint == abs) record = c;
  if (!record) {
    auto r = containers.Get(dir_or_name);
    if (!r.ok()) return Status::Error(ENOENT, "no mounted container at or named " + dir_or_name);
    record = *r;
  }
  if (record->mountpoint.empty()) return Status::Error(EINVAL, "container " + record->name + " is not mounted");
  RETURN_IF_ERROR(UnmountMountpoint(record->mountpoint, record->daemon_pid));
  ClearMount(store, record->id, 0);
  return Status::Ok();
}

Status RemoveContainer(const Store& store, const std::string& name_or_id, bool force) {
  ContainerStore containers(store);
  ASSIGN_OR_RETURN(ContainerRecord r, containers.Get(name_or_id));
  if (!r.mountpoint.empty()) {
    if (!force && StateOf(r) == ContainerState::kMounted)
      return Status::Error(EBUSY, "container " + r.name + " is mounted at " + r.mountpoint + " (umount it or use -f)");
    RETURN_IF_ERROR(UnmountMountpoint(r.mountpoint, r.daemon_pid, /*lazy=*/force));
  }
  return containers.Remove(r.id);
}

}  // namespace layerfs
