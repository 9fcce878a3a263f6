#include "layerstore/lazy/partial_image.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "layerstore/store/layer_store.h"

namespace layerfs {

PartialImage PartialImage::Of(const LazyImage& lazy, const LazyPullOptions& options) {
  const Image& image = lazy.image();
  return PartialImage{lazy.ref(), image.manifest_digest, image.id(), image.config.value("created", std::string()),
                      image.layers, image.diff_ids, options.insecure_registries};
}

Status WritePartialImage(const std::filesystem::path& file, const PartialImage& image) {
  nlohmann::json layers = nlohmann::json::array();
  for (const Descriptor& d : image.layers) layers.push_back(DescriptorJson(d));
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const Digest& d : image.diff_ids) diff_ids.push_back(d.str());
  nlohmann::json j = {{"ref", image.ref}, {"manifest", image.manifest_digest.str()}, {"config", image.config_digest.str()}, {"created", image.created}, {"layers", layers}, {"diffIds", diff_ids}, {"insecureRegistries", image.insecure_registries}};
  return WriteFileAtomicVia(file.string() + ".tmp", file, j.dump());
}

Result<PartialImage> ReadPartialImage(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return Status::FromErrno("read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text.str(), file.string()));
  auto bad = [&] { return Status::Error(EINVAL, file.string() + ": not a partial image record"); };
  if (!j.is_object() || !j["ref"].is_string() || !j["created"].is_string() || !j["layers"].is_array() ||
      !j["diffIds"].is_array() || j["layers"].size() != j["diffIds"].size())
    return bad();
  PartialImage image;
  image.ref = j["ref"].get<std::string>();
  image.created = j["created"].get<std::string>();
  for (const char* key : {"manifest", "config"})
    if (!j[key].is_string() || !Digest::Parse(j[key].get<std::string>()).ok()) return bad();
  image.manifest_digest = *Digest::Parse(j["manifest"].get<std::string>());
  image.config_digest = *Digest::Parse(j["config"].get<std::string>());
  for (const auto& l : j["layers"]) {
    ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l, file.string()));
    image.layers.push_back(std::move(d));
  }
  if (j.contains("insecureRegistries")) {
    if (!j["insecureRegistries"].is_array()) return bad();
    for (const auto& h : j["insecureRegistries"]) {
      if (!h.is_string()) return bad();
      image.insecure_registries.push_back(h.get<std::string>());
    }
  }
  for (const auto& d : j["diffIds"]) {
    auto digest = d.is_string() ? Digest::Parse(d.get<std::string>()) : Result<Digest>(bad());
    if (!digest.ok()) return bad();
    image.diff_ids.push_back(*digest);
  }
  return image;
}

LocalBytes LocalBytesOf(const Store& store, const PartialImage& image) {
  LocalBytes out;
  out.complete = true;
  LayerStore layers(store);
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const uint64_t size = image.layers[i].size;
    out.total += size;
    if (layers.Has(image.diff_ids[i])) {
      out.local += size;
      continue;
    }
    out.complete = false;
    struct stat st;
    if (::stat((store.lazy_layer_dir(image.diff_ids[i]) / "blob").c_str(), &st) == 0)
      out.local += std::min<uint64_t>(size, static_cast<uint64_t>(st.st_blocks) * 512);
  }
  return out;
}

nlohmann::json LocalBytesJson(const LocalBytes& local) {
  return {{"LocalBytes", local.local}, {"TotalBytes", local.total}, {"Percent", local.Percent()}};
}

}  // namespace layerfs
