#include "layerstore/store/layer_holds.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace layerfs {

namespace {

fs::path HoldsDir(const Store& store) { return store.root() / "holds"; }

bool IsHolderName(const std::string& holder) {
  if (holder.empty()) return false;
  for (char c : holder)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

nlohmann::json ToJson(const std::set<Digest>& digests) {
  nlohmann::json out = nlohmann::json::array();
  for (const Digest& d : digests) out.push_back(d.str());
  return out;
}

Status AddDigests(const nlohmann::json& list, std::set<Digest>* out) {
  for (const auto& s : list) {
    ASSIGN_OR_RETURN(Digest d, Digest::Parse(s.get<std::string>()));
    out->insert(d);
  }
  return Status::Ok();
}

}  // namespace

Status LayerHolds::Set(const std::string& holder, const HeldLayers& held) const {
  if (!IsHolderName(holder)) return Status::Error(EINVAL, "bad holder name " + holder);
  fs::path file = HoldsDir(*store_) / (holder + ".json");
  if (held.diff_ids.empty() && held.chains.empty()) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + file.string());
    return Status::Ok();
  }
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) return Status::Error(ec.value(), "create " + file.parent_path().string() + ": " + ec.message());
  nlohmann::json j = {{"layers", ToJson(held.diff_ids)}, {"chains", ToJson(held.chains)}};
  return WriteFileAtomic(*store_, file, j.dump());
}

Result<HeldLayers> LayerHolds::All() const {
  HeldLayers all;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(HoldsDir(*store_), ec)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    try {
      nlohmann::json j = nlohmann::json::parse(in);
      RETURN_IF_ERROR(AddDigests(j.at("layers"), &all.diff_ids));
      RETURN_IF_ERROR(AddDigests(j.at("chains"), &all.chains));
    } catch (const std::exception& ex) {
      return Status::Error(EINVAL, e.path().string() + ": not a holds file: " + ex.what());
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return Status::Error(ec.value(), "read " + HoldsDir(*store_).string() + ": " + ec.message());
  return all;
}

}  // namespace layerfs
