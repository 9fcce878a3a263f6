#include "layerstore/snapshots/snapshot_catalog.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "layerstore/store/store.h"

namespace layerfs {

namespace {

using nlohmann::json;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json ToJson(const SnapshotRecord& r) {
  return {{"id", r.id},
          {"name", r.info.name},
          {"parent", r.info.parent},
          {"kind", static_cast<int>(r.info.kind)},
          {"created_ns", r.info.created_ns},
          {"updated_ns", r.info.updated_ns},
          {"labels", r.info.labels},
          {"layer", r.layer.empty() ? "" : r.layer.str()}};
}

SnapshotRecord FromJson(const json& j) {
  SnapshotRecord r;
  r.id = j.at("id").get<uint64_t>();
  r.info.name = j.at("name").get<std::string>();
  r.info.parent = j.at("parent").get<std::string>();
  int kind = j.at("kind").get<int>();
  if (kind < 1 || kind > 3) throw std::invalid_argument("bad kind");
  r.info.kind = static_cast<SnapshotKind>(kind);
  r.info.created_ns = j.at("created_ns").get<int64_t>();
  r.info.updated_ns = j.at("updated_ns").get<int64_t>();
  r.info.labels = j.at("labels").get<std::map<std::string, std::string>>();
  std::string layer = j.value("layer", "");
  if (!layer.empty()) {
    auto d = Digest::Parse(layer);
    if (!d.ok()) throw std::invalid_argument(d.status().message());
    r.layer = *d;
  }
  return r;
}

Status Invalid(const std::string& what) { return Status::Error(EINVAL, what); }

}  // namespace

Status ValidateName(const std::string& name) {
  if (name.empty()) return Invalid("snapshot key is empty");
  if (name.size() > SnapshotCatalog::kMaxNameBytes) return Invalid("snapshot key is longer than 1024 bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return Invalid("snapshot key holds a control character");
  if (name.front() == '/') return Invalid("snapshot key " + name + " is absolute");
  std::istringstream parts(name);
  for (std::string part; std::getline(parts, part, '/');)
    if (part == "." || part == "..") return Invalid("snapshot key " + name + " has a . or .. component");
  return Status::Ok();
}

Status ValidateLabels(const std::map<std::string, std::string>& labels) {
  if (labels.size() > SnapshotCatalog::kMaxLabels) return Invalid("more than 256 labels");
  for (const auto& [k, v] : labels) {
    if (k.empty()) return Invalid("label with an empty key");
    if (k.size() + v.size() > 4096) return Invalid("label " + k.substr(0, 64) + " is longer than 4096 bytes");
    if (k.find('\0') != std::string::npos || v.find('\0') != std::string::npos)
      return Invalid("label " + k.substr(0, 64) + " holds a NUL byte");
  }
  return Status::Ok();
}

Result<SnapshotCatalog> SnapshotCatalog::Open(const std::filesystem::path& file) {
  SnapshotCatalog catalog(file);
  std::ifstream in(file);
  if (!in) return catalog;
  try {
    json j = json::parse(in);
    catalog.next_id_ = j.at("next_id").get<uint64_t>();
    for (const auto& s : j.at("snapshots")) {
      SnapshotRecord r = FromJson(s);
      if (r.id >= catalog.next_id_) throw std::invalid_argument("id beyond next_id");
      catalog.records_[r.info.name] = std::move(r);
    }
  } catch (const std::exception& e) {
    return Invalid(file.string() + ": not a snapshot catalog: " + e.what());
  }
  return catalog;
}

Status SnapshotCatalog::Save() const {
  json list = json::array();
  for (const auto& [key, r] : records_) list.push_back(ToJson(r));
  json j = {{"next_id", next_id_}, {"snapshots", std::move(list)}};
  std::filesystem::path tmp = file_;
  tmp += ".tmp-" + std::to_string(::getpid());
  return WriteFileAtomicVia(tmp, file_, j.dump());
}

const SnapshotRecord* SnapshotCatalog::Find(const std::string& key) const {
  auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

Status SnapshotCatalog::CheckNew(const std::string& key, const std::string& parent,
                                 const std::map<std::string, std::string>& labels) const {
  RETURN_IF_ERROR(ValidateName(key));
  if (!parent.empty()) RETURN_IF_ERROR(ValidateName(parent));
  RETURN_IF_ERROR(ValidateLabels(labels));
  if (Find(key)) return Status::Error(EEXIST, "snapshot " + key + " already exists");
  if (!parent.empty()) {
    const SnapshotRecord* p = Find(parent);
    if (!p) return Status::Error(ENOENT, "parent snapshot " + parent + " does not exist");
    if (p->info.kind != SnapshotKind::kCommitted) return Invalid("parent " + parent + " is not a committed snapshot");
  }
  return Status::Ok();
}

Result<SnapshotRecord> SnapshotCatalog::Insert(SnapshotRecord r) {
  r.id = next_id_;
  r.info.created_ns = r.info.updated_ns = NowNs();
  auto saved = records_;
  records_[r.info.name] = r;
  ++next_id_;
  if (Status st = Save(); !st.ok()) {
    records_ = std::move(saved);
    --next_id_;
    return st;
  }
  return r;
}

Result<SnapshotRecord> SnapshotCatalog::Create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                               const std::map<std::string, std::string>& labels) {
  if (kind == SnapshotKind::kCommitted) return Invalid("a snapshot is committed only by Commit");
  RETURN_IF_ERROR(CheckNew(key, parent, labels));
  return Insert({0, {key, parent, kind, 0, 0, labels}, Digest()});
}

Result<SnapshotRecord> SnapshotCatalog::Adopt(const std::string& name, const std::string& parent,
                                              const std::map<std::string, std::string>& labels, const Digest& layer) {
  RETURN_IF_ERROR(CheckNew(name, parent, labels));
  return Insert({0, {name, parent, SnapshotKind::kCommitted, 0, 0, labels}, layer});
}

Result<SnapshotRecord> SnapshotCatalog::Commit(const std::string& name, const std::string& key,
                                               const std::map<std::string, std::string>& labels) {
  RETURN_IF_ERROR(ValidateName(name));
  RETURN_IF_ERROR(ValidateLabels(labels));
  const SnapshotRecord* active = Find(key);
  if (!active) return Status::Error(ENOENT, "snapshot " + key + " does not exist");
  if (active->info.kind != SnapshotKind::kActive) return Status::Error(EBUSY, "snapshot " + key + " is not active");
  if (Find(name)) return Status::Error(EEXIST, "snapshot " + name + " already exists");
  SnapshotRecord r = *active;
  r.info.name = name;
  r.info.kind = SnapshotKind::kCommitted;
  r.info.labels = labels;
  r.info.created_ns = r.info.updated_ns = NowNs();
  auto saved = records_;
  records_.erase(key);
  records_[name] = r;
  if (Status st = Save(); !st.ok()) {
    records_ = std::move(saved);
    return st;
  }
  return r;
}

Result<SnapshotRecord> SnapshotCatalog::Remove(const std::string& key) {
  const SnapshotRecord* found = Find(key);
  if (!found) return Status::Error(ENOENT, "snapshot " + key + " does not exist");
  for (const auto& [k, r] : records_)
    if (r.info.parent == key) return Status::Error(EBUSY, "cannot remove snapshot " + key + ": it has children");
  SnapshotRecord removed = *found;
  auto saved = records_;
  records_.erase(key);
  if (Status st = Save(); !st.ok()) {
    records_ = std::move(saved);
    return st;
  }
  return removed;
}

Result<SnapshotRecord> SnapshotCatalog::Update(const SnapshotInfo& info, const std::vector<std::string>& paths) {
  auto it = records_.find(info.name);
  if (it == records_.end()) return Status::Error(ENOENT, "snapshot " + info.name + " does not exist");
  RETURN_IF_ERROR(ValidateLabels(info.labels));
  SnapshotRecord r = it->second;
  if (paths.empty()) r.info.labels = info.labels;
  for (const auto& p : paths) {
    if (p == "labels") {
      r.info.labels = info.labels;
    } else if (p.rfind("labels.", 0) == 0 && p.size() > 7) {
      std::string k = p.substr(7);
      if (auto v = info.labels.find(k); v != info.labels.end()) r.info.labels[k] = v->second;
      else
        r.info.labels.erase(k);
    } else {
      return Invalid("cannot update field " + p + " of snapshot " + info.name + ": only labels change");
    }
  }
  RETURN_IF_ERROR(ValidateLabels(r.info.labels));
  r.info.updated_ns = NowNs();
  SnapshotRecord old = it->second;
  it->second = r;
  if (Status st = Save(); !st.ok()) {
    it->second = std::move(old);
    return st;
  }
  return r;
}

Result<SnapshotRecord> SnapshotCatalog::Get(const std::string& key) const {
  const SnapshotRecord* r = Find(key);
  if (!r) return Status::Error(ENOENT, "snapshot " + key + " does not exist");
  return *r;
}

Result<std::vector<SnapshotRecord>> SnapshotCatalog::Parents(const std::string& key) const {
  ASSIGN_OR_RETURN(SnapshotRecord r, Get(key));
  std::vector<SnapshotRecord> parents;
  for (std::string p = r.info.parent; !p.empty();) {
    const SnapshotRecord* parent = Find(p);
    if (!parent || parents.size() > records_.size())
      return Status::Error(EIO, "snapshot " + key + ": broken parent chain");
    parents.push_back(*parent);
    p = parent->info.parent;
  }
  return parents;
}

std::vector<SnapshotRecord> SnapshotCatalog::List() const {
  std::vector<SnapshotRecord> out;
  out.reserve(records_.size());
  for (const auto& [k, r] : records_) out.push_back(r);
  return out;
}

bool SnapshotCatalog::HasId(uint64_t id) const {
  for (const auto& [k, r] : records_)
    if (r.id == id) return true;
  return false;
}

}  // namespace layerfs
