#include "layerstore/store/container_store.h"

#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

namespace layerfs {

namespace {

using nlohmann::json;

std::string RandomHexId() {
  std::random_device rd;
  std::string raw;
  for (int i = 0; i < 8; ++i) raw += std::to_string(rd());
  raw += std::to_string(std::time(nullptr));
  return Sha256Of(raw).hex();
}

json ToJson(const ContainerRecord& r) {
  return json{{"Id", r.id},
              {"Name", r.name},
              {"Image", r.image_ref},
              {"ImageID", r.image_id.str()},
              {"ManifestDigest", r.manifest_digest.empty() ? "" : r.manifest_digest.str()},
              {"Mountpoint", r.mountpoint},
              {"DaemonPid", r.daemon_pid},
              {"Created", r.created_unix}};
}

Result<ContainerRecord> FromJson(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return Status::FromErrno(file.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(EINVAL, "corrupt container record " + file.string());
  ContainerRecord r;
  r.id = j.value("Id", "");
  r.name = j.value("Name", "");
  r.image_ref = j.value("Image", "");
  if (auto d = Digest::Parse(j.value("ImageID", "")); d.ok()) r.image_id = *d;
  if (auto d = Digest::Parse(j.value("ManifestDigest", "")); d.ok()) r.manifest_digest = *d;
  r.mountpoint = j.value("Mountpoint", "");
  r.daemon_pid = j.value("DaemonPid", 0);
  r.created_unix = j.value("Created", int64_t{0});
  if (r.id.size() != 64) return Status::Error(EINVAL, "corrupt container record " + file.string());
  return r;
}

bool NameTaken(const std::vector<ContainerRecord>& all, std::string_view name) {
  for (const auto& c : all)
    if (c.name == name) return true;
  return false;
}

}  // namespace

Result<ContainerRecord> ContainerStore::Create(const Image& image, std::string_view image_ref,
                                               std::string_view name) const {
  ASSIGN_OR_RETURN(StoreLock lock, store_->LockExclusive());
  std::vector<ContainerRecord> all = List();
  if (!name.empty() && NameTaken(all, name))
    return Status::Error(EEXIST, "container name \"" + std::string(name) + "\" is already in use");
  ContainerRecord r;
  r.id = RandomHexId();
  r.name = name.empty() ? "layerfs_" + r.id.substr(0, 12) : std::string(name);
  r.image_ref = std::string(image_ref);
  r.image_id = image.id();
  r.manifest_digest = image.manifest_digest;
  r.created_unix = std::time(nullptr);

  // Build the whole directory in tmp/ and rename it in, so a container is whole or absent.
  fs::path staging = store_->NewTempPath("container");
  std::error_code ec;
  fs::create_directories(staging / "upper", ec);
  if (!ec) fs::create_directories(staging / "work", ec);
  if (ec) return Status::Error(ec.value(), "create container: " + ec.message());
  std::ofstream(staging / "container.json") << ToJson(r).dump(2) << "\n";
  fs::rename(staging, dir(r.id), ec);
  if (ec) {
    fs::remove_all(staging, ec);
    return Status::Error(EIO, "create container " + r.name + ": cannot publish directory");
  }
  return r;
}

Result<ContainerRecord> ContainerStore::Get(std::string_view name_or_id) const {
  std::vector<ContainerRecord> matches;
  for (auto& c : List()) {
    if (c.name == name_or_id || c.id == name_or_id) return c;
    if (name_or_id.size() >= 1 && c.id.compare(0, name_or_id.size(), name_or_id) == 0) matches.push_back(c);
  }
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1)
    return Status::Error(EINVAL, "container id prefix \"" + std::string(name_or_id) + "\" is ambiguous");
  return Status::Error(ENOENT, "no such container: " + std::string(name_or_id));
}

std::vector<ContainerRecord> ContainerStore::List() const {
  std::vector<ContainerRecord> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store_->containers_dir(), ec)) {
    auto r = FromJson(e.path() / "container.json");
    if (r.ok()) out.push_back(std::move(r).value());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_unix > b.created_unix; });
  return out;
}

Status ContainerStore::Update(const ContainerRecord& record) const {
  return WriteFileAtomic(*store_, dir(record.id) / "container.json", ToJson(record).dump(2) + "\n");
}

Status ContainerStore::Remove(std::string_view id) const {
  // Rename out of sight first so a crash mid-delete never leaves a half container listed.
  fs::path doomed = store_->NewTempPath("rm-container");
  std::error_code ec;
  fs::rename(dir(id), doomed, ec);
  if (ec) return Status::Error(ec.value(), "remove container " + std::string(id) + ": " + ec.message());
  fs::remove_all(doomed, ec);
  return Status::Ok();
}

}  // namespace layerfs
