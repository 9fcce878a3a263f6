#include "layerstore/oci/image.h"

#include <set>

#include "layerstore/oci/reference.h"

namespace layerfs {

namespace {

Status Bad(const std::string& what, const std::string& why) { return Status::Error(EINVAL, what + ": " + why); }

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<std::vector<Digest>> ParseDiffIds(const nlohmann::json& config, const std::string& what) {
  auto rootfs = config.find("rootfs");
  if (rootfs == config.end() || !rootfs->is_object()) return Bad(what, "config has no rootfs");
  auto ids = rootfs->find("diff_ids");
  if (ids == rootfs->end() || !ids->is_array()) return Bad(what, "config has no rootfs.diff_ids");
  std::vector<Digest> out;
  for (const auto& id : *ids) {
    if (!id.is_string()) return Bad(what, "diff_id is not a string");
    auto d = Digest::Parse(id.get<std::string>());
    if (!d.ok()) return Bad(what, "bad diff_id \"" + id.get<std::string>() + "\"");
    out.push_back(*d);
  }
  return out;
}

std::vector<HistoryEntry> ParseHistory(const nlohmann::json& config) {
  std::vector<HistoryEntry> out;
  auto history = config.find("history");
  if (history == config.end() || !history->is_array()) return out;
  for (const auto& h : *history) {
    if (!h.is_object()) continue;
    HistoryEntry e;
    e.created = StringField(h, "created");
    e.created_by = StringField(h, "created_by");
    e.author = StringField(h, "author");
    e.comment = StringField(h, "comment");
    auto empty = h.find("empty_layer");
    e.empty_layer = empty != h.end() && empty->is_boolean() && empty->get<bool>();
    out.push_back(std::move(e));
  }
  return out;
}

bool PlatformMatches(const nlohmann::json& p, const Platform& want) {
  if (!p.is_object()) return false;
  if (StringField(p, "os") != want.os || StringField(p, "architecture") != want.architecture) return false;
  if (want.variant.empty()) return true;
  std::string variant = StringField(p, "variant");
  // Docker treats arm64 without a variant as v8.
  return variant == want.variant || (variant.empty() && want.architecture == "arm64" && want.variant == "v8");
}

}  // namespace

Digest Image::chain_id() const { return ChainId(diff_ids); }

std::vector<Digest> Image::blobs() const {
  std::vector<Digest> out = {manifest_digest, id()};
  if (!source_manifest.digest.empty()) out.push_back(source_manifest.digest);
  for (const auto& l : layers) out.push_back(l.digest);
  return out;
}

Digest ChainId(const std::vector<Digest>& diff_ids) {
  if (diff_ids.empty()) return Digest();
  Digest chain = diff_ids[0];
  for (size_t i = 1; i < diff_ids.size(); ++i) chain = Sha256Of(chain.str() + " " + diff_ids[i].str());
  return chain;
}

Result<nlohmann::json> ParseJson(std::string_view bytes, const std::string& what) {
  try {
    auto j = nlohmann::json::parse(bytes);
    if (!j.is_object() && !j.is_array()) return Bad(what, "not a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Bad(what, std::string("invalid JSON: ") + e.what());
  }
}

Result<Descriptor> ParseDescriptor(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) return Bad(what, "descriptor is not an object");
  Descriptor d;
  d.media_type = StringField(j, "mediaType");
  std::string digest = StringField(j, "digest");
  auto parsed = Digest::Parse(digest);
  if (!parsed.ok()) return Bad(what, "bad digest \"" + digest + "\"");
  d.digest = *parsed;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) return Bad(what, "descriptor " + digest + " has no size");
  d.size = size->get<uint64_t>();
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) d.annotations = *a;
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) d.platform = *p;
  return d;
}

nlohmann::json DescriptorJson(const Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (d.annotations.is_object() && !d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform.is_object() && !d.platform.empty()) j["platform"] = d.platform;
  return j;
}

bool IsIndexMediaType(std::string_view t) { return t == kOciIndexType || t == kDockerListType; }
bool IsManifestMediaType(std::string_view t) { return t == kOciManifestType || t == kDockerManifestType; }

std::string DocumentMediaType(const nlohmann::json& doc) {
  if (!doc.is_object()) return "";
  std::string t = StringField(doc, "mediaType");
  if (!t.empty()) return t;
  if (doc.contains("manifests")) return kOciIndexType;
  if (doc.contains("config") && doc.contains("layers")) return kOciManifestType;
  return "";
}

Status ParseManifest(std::string_view bytes, const std::string& what, Image* image) {
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, what));
  std::string type = DocumentMediaType(doc);
  if (!IsManifestMediaType(type)) return Bad(what, "not an image manifest (media type \"" + type + "\")");
  image->manifest_media_type = type;
  ASSIGN_OR_RETURN(image->config_descriptor, ParseDescriptor(doc["config"], what + " config"));
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) return Bad(what, "manifest has no layers array");
  image->layers.clear();
  for (const auto& l : *layers) {
    ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l, what + " layer"));
    image->layers.push_back(std::move(d));
  }
  image->source_manifest = Descriptor();
  auto annotations = doc.find("annotations");
  if (type == kOciManifestType && annotations != doc.end() && annotations->is_object()) {
    std::string source = StringField(*annotations, kSourceManifestAnnotation);
    if (!source.empty()) {
      auto digest = Digest::Parse(source);
      if (!digest.ok()) return Bad(what, "bad " + std::string(kSourceManifestAnnotation) + " \"" + source + "\"");
      image->source_manifest = {kDockerManifestType, *digest, 0, nlohmann::json(), nlohmann::json()};
    }
  }
  return Status::Ok();
}

Status ParseConfig(std::string_view bytes, const std::string& what, Image* image) {
  ASSIGN_OR_RETURN(image->config, ParseJson(bytes, what));
  if (!image->config.is_object()) return Bad(what, "config is not an object");
  ASSIGN_OR_RETURN(image->diff_ids, ParseDiffIds(image->config, what));
  if (image->diff_ids.size() != image->layers.size())
    return Bad(what, "config lists " + std::to_string(image->diff_ids.size()) + " diff_ids but the manifest " +
                         std::to_string(image->layers.size()) + " layers");
  image->history = ParseHistory(image->config);
  return Status::Ok();
}

Result<Platform> ParsePlatform(std::string_view text) {
  Platform p;
  if (text.empty()) return p;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
    return Status::Error(EINVAL, "invalid platform \"" + std::string(text) + "\": want os/arch[/variant]");
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

Result<Descriptor> SelectPlatformManifest(const nlohmann::json& index, const Platform& platform,
                                          const std::string& what) {
  auto manifests = index.find("manifests");
  if (manifests == index.end() || !manifests->is_array()) return Bad(what, "index has no manifests");
  for (const auto& m : *manifests) {
    if (!PlatformMatches(m.value("platform", nlohmann::json()), platform)) continue;
    return ParseDescriptor(m, what);
  }
  std::string want = platform.os + "/" + platform.architecture + (platform.variant.empty() ? "" : "/" + platform.variant);
  return Status::Error(ENOENT, what + ": no manifest for platform " + want);
}

}  // namespace layerfs

namespace layerfs {

std::vector<std::pair<HistoryEntry, int>> HistoryLayers(const Image& image) {
  std::vector<std::pair<HistoryEntry, int>> out;
  int layer = 0;
  for (const auto& h : image.history) {
    bool has_layer = !h.empty_layer && layer < static_cast<int>(image.layers.size());
    out.emplace_back(h, has_layer ? layer++ : -1);
  }
  for (; layer < static_cast<int>(image.layers.size()); ++layer) out.emplace_back(HistoryEntry{}, layer);
  return out;
}

nlohmann::json InspectJson(const Image& image, uint64_t size) {
  nlohmann::json tags = nlohmann::json::array();
  nlohmann::json digests = nlohmann::json::array();
  std::set<std::string> repos;
  for (const auto& t : image.tags) {
    tags.push_back(FamiliarString(t));
    auto ref = ParseReference(t);
    if (ref.ok() && repos.insert(ref->FamiliarName()).second)
      digests.push_back(ref->FamiliarName() + "@" + image.repo_digest().str());
  }
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const auto& d : image.diff_ids) diff_ids.push_back(d.str());
  const nlohmann::json& c = image.config;
  auto field = [&](const char* key) { return c.contains(key) ? c[key] : nlohmann::json(""); };
  nlohmann::json out = {
      {"Id", image.id().str()},
      {"RepoTags", tags},
      {"RepoDigests", digests},
      {"Parent", ""},
      {"Comment", field("comment")},
      {"Created", field("created")},
      {"Author", field("author")},
      {"Config", c.contains("config") ? c["config"] : nlohmann::json()},
      {"Architecture", field("architecture")},
      {"Os", field("os")},
      {"Size", size},
      {"RootFS", {{"Type", "layers"}, {"Layers", diff_ids}}},
      {"Descriptor", DescriptorJson({image.manifest_media_type, image.manifest_digest, image.manifest_size,
                                     nlohmann::json(), nlohmann::json()})},
  };
  if (c.contains("variant")) out["Variant"] = c["variant"];
  return out;
}

}  // namespace layerfs
