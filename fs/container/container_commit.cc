#include "fs/container/container_commit.h"

#include <fcntl.h>
#include <unistd.h>

#include <sstream>

#include "fs/container/commit_layer.h"
#include "fs/index/merged_index.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

Result<Image> ImageOf(const Store& store, const ContainerRecord& container) {
  auto image = ImageStore(store).Resolve(container.image_id.str());
  if (!image.ok()) return image.status().WithContext("container " + container.name);
  return image;
}

// Flushes what the kernel still buffers for a live mount, so the upper holds every write.
void SyncMount(const std::string& mountpoint) {
  if (mountpoint.empty()) return;
  UniqueFd fd(open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || syncfs(fd.get()) != 0) sync();
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// ["a","b"] as JSON, otherwise the shell form ["/bin/sh","-c",text].
nlohmann::json CommandForm(const std::string& text) {
  if (text.starts_with("[")) {
    auto parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_array()) return parsed;
  }
  return nlohmann::json::array({"/bin/sh", "-c", text});
}

// "K=V K2=V2" or "K V" -> pairs.
std::vector<std::pair<std::string, std::string>> KeyValues(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  if (text.find('=') == std::string::npos) {
    auto sp = text.find_first_of(" \t");
    if (sp != std::string::npos) out.emplace_back(text.substr(0, sp), Trim(text.substr(sp)));
    return out;
  }
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    auto eq = word.find('=');
    std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.emplace_back(word.substr(0, eq), value);
  }
  return out;
}

nlohmann::json WithEnv(nlohmann::json env, const std::string& key, const std::string& value) {
  if (!env.is_array()) env = nlohmann::json::array();
  for (auto& e : env)
    if (e.is_string() && e.get<std::string>().starts_with(key + "=")) {
      e = key + "=" + value;
      return env;
    }
  env.push_back(key + "=" + value);
  return env;
}

}  // namespace

Result<nlohmann::json> ConfigChanges(const nlohmann::json& base_config, const std::vector<std::string>& changes) {
  nlohmann::json current = base_config.is_object() ? base_config : nlohmann::json::object();
  nlohmann::json out = nlohmann::json::object();
  auto set = [&](const std::string& key, nlohmann::json value) { current[key] = out[key] = std::move(value); };
  auto object = [&](const std::string& key) { return current[key].is_object() ? current[key] : nlohmann::json::object(); };
  for (const auto& change : changes) {
    std::string text = Trim(change);
    auto sp = text.find_first_of(" \t");
    std::string word = text.substr(0, sp), arg = sp == std::string::npos ? "" : Trim(text.substr(sp));
    for (auto& c : word) c = static_cast<char>(toupper(c));
    if (word == "CMD") set("Cmd", CommandForm(arg));
    else if (word == "ENTRYPOINT")
      set("Entrypoint", CommandForm(arg));
    else if (word == "WORKDIR")
      set("WorkingDir", arg);
    else if (word == "USER")
      set("User", arg);
    else if (word == "STOPSIGNAL")
      set("StopSignal", arg);
    else if (word == "ENV") {
      nlohmann::json env = current["Env"];
      for (const auto& [k, v] : KeyValues(arg)) env = WithEnv(env, k, v);
      set("Env", env);
    } else if (word == "LABEL") {
      nlohmann::json labels = object("Labels");
      for (const auto& [k, v] : KeyValues(arg)) labels[k] = v;
      set("Labels", labels);
    } else if (word == "EXPOSE") {
      nlohmann::json ports = object("ExposedPorts");
      std::istringstream in(arg);
      for (std::string p; in >> p;) ports[p.find('/') == std::string::npos ? p + "/tcp" : p] = nlohmann::json::object();
      set("ExposedPorts", ports);
    } else if (word == "VOLUME") {
      nlohmann::json volumes = object("Volumes");
      nlohmann::json list = arg.starts_with("[") ? nlohmann::json::parse(arg, nullptr, false) : nlohmann::json();
      if (!list.is_array()) {
        list = nlohmann::json::array();
        std::istringstream in(arg);
        for (std::string v; in >> v;) list.push_back(v);
      }
      for (const auto& v : list)
        if (v.is_string()) volumes[v.get<std::string>()] = nlohmann::json::object();
      set("Volumes", volumes);
    } else {
      return Status::Error(EINVAL, "unsupported --change \"" + change +
                                       "\" (CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, "
                                       "VOLUME, WORKDIR, USER, STOPSIGNAL)");
    }
  }
  return out;
}

Result<std::vector<UpperChange>> DiffContainer(const Store& store, const ContainerRecord& container) {
  ASSIGN_OR_RETURN(Image image, ImageOf(store, container));
  SyncMount(container.mountpoint);
  ASSIGN_OR_RETURN(MergedIndex index, MergedIndex::LoadOrBuild(store, image.diff_ids));
  return ListUpperChanges(ContainerStore(store).upper_dir(container.id), index);
}

Result<Image> CommitContainer(const Store& store, const ContainerRecord& container, const CommitOptions& options) {
  ASSIGN_OR_RETURN(Image image, ImageOf(store, container));
  ASSIGN_OR_RETURN(nlohmann::json config_changes, ConfigChanges(image.config.value("config", nlohmann::json()), options.changes));
  SyncMount(container.mountpoint);
  ASSIGN_OR_RETURN(MergedIndex index, MergedIndex::LoadOrBuild(store, image.diff_ids));
  std::vector<std::filesystem::path> trees;
  for (const auto& d : image.diff_ids) trees.push_back(store.layer_tree(d));
  ASSIGN_OR_RETURN(BlobWriter writer, BlobStore(store).NewWriter());
  auto layer = WriteCommitLayer(ContainerStore(store).upper_dir(container.id), index, trees, &writer);
  if (!layer.ok()) return layer.status().WithContext("commit " + container.name);
  uint64_t size = writer.bytes_written();
  ASSIGN_OR_RETURN(Digest blob, writer.Commit());
  RETURN_IF_ERROR(LayerStore(store).Ensure({LayerRequest{blob, layer->diff_id}}));
  ImageStore::ChildSpec spec;
  spec.layer = Descriptor{kOciLayerGzipType, blob, size, nlohmann::json(), nlohmann::json()};
  spec.diff_id = layer->diff_id;
  spec.history.created_by = "layerfs commit";
  spec.history.comment = options.comment;
  spec.history.author = options.author;
  spec.config_changes = config_changes.empty() ? nlohmann::json() : config_changes;
  return ImageStore(store).CreateChild(&image, spec, options.ref);
}

}  // namespace layerfs
