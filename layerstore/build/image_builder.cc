#include "layerstore/build/image_builder.h"

#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>

#include "layerstore/base/remove_tree.h"
#include "layerstore/build/chain_view.h"
#include "layerstore/build/copy_plan.h"
#include "layerstore/build/dockerfile.h"
#include "layerstore/build/dockerignore.h"
#include "layerstore/build/user_db.h"
#include "layerstore/oci/oci_conversion.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/build_cache.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kHistoryComment = "buildkit.dockerfile.v0";

const std::set<std::string> kSupported = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR",
                                          "USER", "LABEL", "EXPOSE", "VOLUME", "CMD", "ENTRYPOINT", "SHELL"};

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%09lldZ", static_cast<long long>(ns));
  return std::string(buf) + frac;
}

std::string Join(const std::vector<std::string>& words, const std::string& sep) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

// "/a/b" + "../c" -> "/a/c"; absolute paths replace the base.
std::string ResolvePath(const std::string& base, const std::string& path) {
  std::string joined = !path.empty() && path.front() == '/' ? path : (base.empty() ? "/" : base) + "/" + path;
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= joined.size()) {
    size_t slash = joined.find('/', i);
    if (slash == std::string::npos) slash = joined.size();
    std::string part = joined.substr(i, slash - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = slash + 1;
  }
  return "/" + Join(parts, "/");
}

nlohmann::json ScratchConfig() {
  return {{"architecture", "amd64"},
          {"os", "linux"},
          {"config", nlohmann::json::object()},
          {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}},
          {"history", nlohmann::json::array()}};
}

std::vector<std::string> StringArray(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (const auto& e : j)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

// Sets KEY=VALUE in a Docker Env array, replacing an earlier KEY.
void SetEnv(nlohmann::json* env, const std::string& key, const std::string& value) {
  if (!env->is_array()) *env = nlohmann::json::array();
  for (auto& e : *env) {
    std::string s = e.get<std::string>();
    if (s.substr(0, s.find('=')) == key) {
      e = key + "=" + value;
      return;
    }
  }
  env->push_back(key + "=" + value);
}

}  // namespace

std::string ExecFormText(const std::vector<std::string>& args) {
  std::string out = "[";
  for (size_t i = 0; i < args.size(); ++i) out += (i ? " " : "") + nlohmann::json(args[i]).dump();
  return out + "]";
}

struct ImageBuilder::Impl {
  Impl(ImageBuilder* owner, const BuildOptions& options)
      : b(*owner), opts(options), blobs(*owner->store_), layers(*owner->store_), cache(*owner->store_), images(*owner->store_) {}

  ImageBuilder& b;
  const BuildOptions& opts;
  BlobStore blobs;
  LayerStore layers;
  BuildCache cache;
  ImageStore images;
  Dockerfile df;
  DockerIgnore ignore;

  std::optional<Image> image;  // the current state; none while FROM scratch has no step yet
  nlohmann::json config = ScratchConfig();
  bool have_from = false;
  VarMap global_args;  // ARGs before FROM
  VarMap args;         // ARGs in scope after FROM, with values
  std::vector<std::string> arg_order;
  std::set<std::string> consumed_args;
  bool cmd_set = false;
  bool use_cache = true;
  BuildCache::Candidates added;
  std::vector<Digest> added_records;

  const Store& store() const { return *b.store_; }
  void Print(const std::string& line) const {
    if (b.print_) b.print_(line);
  }
  Digest Parent() const { return image ? image->id() : Digest(); }
  std::vector<Digest> DiffIds() const { return image ? image->diff_ids : std::vector<Digest>(); }
  nlohmann::json& Cfg() {
    if (!config["config"].is_object()) config["config"] = nlohmann::json::object();
    return config["config"];
  }

  VarMap Vars() {
    VarMap vars = args;
    for (const std::string& e : StringArray(Cfg().value("Env", nlohmann::json::array()))) {
      size_t eq = e.find('=');
      vars[e.substr(0, eq)] = eq == std::string::npos ? "" : e.substr(eq + 1);
    }
    return vars;
  }

  // ---- whole build ----

  Result<Image> Build() {
    RETURN_IF_ERROR(Load());
    for (const std::string& note : df.notes) Print("note: " + note);
    size_t n = df.instructions.size();
    for (size_t i = 0; i < n; ++i) {
      const DockerfileInstruction& ins = df.instructions[i];
      Print("Step " + std::to_string(i + 1) + "/" + std::to_string(n) + " : " + ins.original);
      Status st = Step(ins);
      if (!st.ok()) return st.WithContext(DockerfileName() + " line " + std::to_string(ins.line) + ": " + ins.keyword);
    }
    if (!image) return Status::Error(EINVAL, DockerfileName() + ": the build produced no image (FROM scratch and nothing else)");
    WarnUnusedArgs();
    RETURN_IF_ERROR(Tag());
    return *image;
  }

  std::string DockerfileName() const { return DockerfilePath().filename().string(); }
  std::filesystem::path DockerfilePath() const {
    return opts.dockerfile.empty() ? opts.context / "Dockerfile" : opts.dockerfile;
  }

  Status Load() {
    std::error_code ec;
    if (!std::filesystem::is_directory(opts.context, ec))
      return Status::Error(ENOENT, "build context " + opts.context.string() + ": not a directory");
    std::ifstream in(DockerfilePath(), std::ios::binary);
    if (!in) return Status::FromErrno("read " + DockerfilePath().string());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSIGN_OR_RETURN(df, ParseDockerfile(text, DockerfileName()));
    RETURN_IF_ERROR(Validate());
    ASSIGN_OR_RETURN(ignore, DockerIgnore::Load(opts.context));
    use_cache = !opts.no_cache;
    return Status::Ok();
  }

  Status LineError(const DockerfileInstruction& ins, const std::string& what) const {
    return Status::Error(EINVAL, DockerfileName() + " line " + std::to_string(ins.line) + ": " + what);
  }

  // Everything that can be refused without running anything is refused before the first step.
  Status Validate() const {
    bool from = false;
    for (const auto& ins : df.instructions) {
      if (!kSupported.count(ins.keyword)) return LineError(ins, "unknown or unsupported instruction " + ins.keyword);
      if (ins.keyword == "FROM" && from) return LineError(ins, "multi-stage builds (a second FROM) are not supported");
      if (ins.keyword == "FROM") from = true;
      if (!from && ins.keyword != "ARG" && ins.keyword != "FROM") return LineError(ins, ins.keyword + " before FROM");
      if (ins.args.empty()) return LineError(ins, ins.keyword + " requires at least one argument");
      RETURN_IF_ERROR(ValidateFlags(ins));
    }
    if (!from) return Status::Error(EINVAL, DockerfileName() + ": no FROM instruction");
    return Status::Ok();
  }

  Status ValidateFlags(const DockerfileInstruction& ins) const {
    for (const auto& [name, value] : ins.flags) {
      bool copy = ins.keyword == "COPY" || ins.keyword == "ADD";
      if (copy && name == "from") return LineError(ins, ins.keyword + " --from (multi-stage) is not supported");
      if (copy && (name == "chown" || name == "chmod" || name == "link")) continue;
      if (ins.keyword == "FROM" && name == "platform" && (value == "linux/amd64" || value.empty())) continue;
      return LineError(ins, "flag --" + name + " is not supported on " + ins.keyword);
    }
    return Status::Ok();
  }

  void WarnUnusedArgs() {
    std::vector<std::string> unused;
    for (const auto& [k, v] : opts.build_args)
      if (!consumed_args.count(k)) unused.push_back(k);
    if (!unused.empty()) Print("[Warning] One or more build-args [" + Join(unused, " ") + "] were not consumed");
  }

  Status Tag() {
    const Descriptor& m = image->config_descriptor;  // only for the id
    Print("Successfully built " + m.digest.short_id());
    if (opts.tags.empty()) return images.Add(image->manifest_digest, "");
    for (const std::string& tag : opts.tags) {
      RETURN_IF_ERROR(images.Add(image->manifest_digest, tag));
      auto ref = ImageStore::NormalizeRef(tag);
      Print("Successfully tagged " + (ref.ok() ? FamiliarString(*ref) : tag));
    }
    return Status::Ok();
  }

  // Removes what this build added: its cache records, whatever of its blobs and layers nothing
  // else uses, and the merged indexes its mounts created (caches, rebuilt when next needed).
  void Rollback() {
    for (const Digest& key : added_records) (void)cache.Remove(key);
    BuildCache::Candidates data = added;
    data.chains.clear();
    (void)cache.RemoveUnreferenced(data);
    for (const Digest& chain : added.chains) (void)RemoveTree(store().chain_dir(chain));
  }

  // ---- one step ----

  Status Step(const DockerfileInstruction& ins) {
    const std::string& k = ins.keyword;
    if (k == "ARG") return Arg(ins);
    if (k == "FROM") return From(ins);
    if (k == "RUN") return Run(ins);
    if (k == "COPY" || k == "ADD") return Copy(ins);
    if (k == "ENV") return Env(ins);
    if (k == "LABEL") return Label(ins);
    if (k == "WORKDIR") return Workdir(ins);
    if (k == "USER") return User(ins);
    if (k == "EXPOSE") return Expose(ins);
    if (k == "VOLUME") return Volume(ins);
    if (k == "CMD" || k == "ENTRYPOINT" || k == "SHELL") return ExecSetting(ins);
    return LineError(ins, "unknown instruction " + k);
  }

  void PrintId() { Print(" ---> " + (image ? image->id().short_id() : std::string("scratch"))); }

  Status Arg(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKeyValues(ins.args, have_from ? Vars() : global_args, df.escape,
                                                               /*allow_legacy=*/false, /*allow_bare_key=*/true));
    for (const KeyValue& kv : kvs) {
      std::optional<std::string> value;
      if (kv.has_value) value = kv.value;
      if (have_from && !kv.has_value && global_args.count(kv.key)) value = global_args[kv.key];
      if (auto it = opts.build_args.find(kv.key); it != opts.build_args.end()) {
        value = it->second;
        consumed_args.insert(kv.key);
      }
      if (!value) continue;
      VarMap& scope = have_from ? args : global_args;
      if (have_from && !scope.count(kv.key)) arg_order.push_back(kv.key);
      scope[kv.key] = *value;
    }
    if (have_from) PrintId();
    return Status::Ok();
  }

  Status From(const DockerfileInstruction& ins) {
    have_from = true;
    ASSIGN_OR_RETURN(std::vector<std::string> words, ExpandWords(ins.args, global_args, df.escape));
    if (words.size() != 1 && !(words.size() == 3 && (words[1] == "AS" || words[1] == "as")))
      return Status::Error(EINVAL, "expected FROM IMAGE [AS NAME]");
    if (words[0] == "scratch") {
      Print(" ---> scratch");
      return Status::Ok();
    }
    auto base = images.Resolve(words[0]);
    if (!base.ok()) return base.status().WithContext("base image " + words[0] + " (load or pull it first)");
    std::vector<LayerRequest> requests;
    for (size_t i = 0; i < base->layers.size() && i < base->diff_ids.size(); ++i)
      requests.push_back({base->layers[i].digest, base->diff_ids[i]});
    RETURN_IF_ERROR(layers.Ensure(requests));
    image = std::move(base).value();
    config = image->config;
    PrintId();
    return Status::Ok();
  }

  // A cache hit: the step's image becomes the current one.
  Result<bool> TryCache(const Digest& key) {
    if (!use_cache) return false;
    ASSIGN_OR_RETURN(std::optional<CacheRecord> hit, cache.Lookup(key));
    if (!hit) {
      use_cache = false;  // the first miss: this step and every later one run
      return false;
    }
    ASSIGN_OR_RETURN(Image next, images.LoadImage(hit->manifest));
    image = std::move(next);
    config = image->config;
    Print(" ---> CACHED (using cache)");
    PrintId();
    return true;
  }

  Result<Digest> PutJson(const nlohmann::json& doc) {
    std::string bytes = doc.dump();
    Digest d = Sha256Of(bytes);
    if (!blobs.Has(d)) added.blobs.push_back(d);
    return blobs.PutBytes(bytes, d);
  }

  // Records the step's image (config + manifest) and its cache record; it becomes current.
  Status Commit(const Digest& key, const std::string& created_by, const std::optional<LayerBlob>& layer) {
    nlohmann::json next = config;
    std::string now = NowRfc3339();
    if (!next["rootfs"].is_object()) next["rootfs"] = {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}};
    if (!next["history"].is_array()) next["history"] = nlohmann::json::array();
    nlohmann::json h = {{"created", now}, {"created_by", created_by}, {"comment", kHistoryComment}};
    if (!layer) h["empty_layer"] = true;
    if (layer) next["rootfs"]["diff_ids"].push_back(layer->diff_id.str());
    next["history"].push_back(h);
    next["created"] = now;
    ASSIGN_OR_RETURN(Digest config_digest, PutJson(next));
    nlohmann::json manifest_layers = nlohmann::json::array();
    if (image)
      for (Descriptor l : image->layers) {
        l.media_type = OciMediaType(l.media_type);
        manifest_layers.push_back(DescriptorJson(l));
      }
    if (layer) manifest_layers.push_back(DescriptorJson(layer->blob));
    Descriptor config_desc{kOciConfigType, config_digest, next.dump().size(), nlohmann::json(), nlohmann::json()};
    nlohmann::json manifest = {{"schemaVersion", 2}, {"mediaType", kOciManifestType}, {"config", DescriptorJson(config_desc)}, {"layers", manifest_layers}};
    ASSIGN_OR_RETURN(Digest manifest_digest, PutJson(manifest));
    Descriptor manifest_desc{kOciManifestType, manifest_digest, manifest.dump().size(), nlohmann::json(), nlohmann::json()};
    ASSIGN_OR_RETURN(Image next_image, images.LoadImage(manifest_desc));
    CacheRecord record{key, created_by, manifest_desc, layer ? layer->blob.digest : Digest(),
                       layer ? layer->diff_id : Digest(), static_cast<int64_t>(::time(nullptr))};
    RETURN_IF_ERROR(cache.Put(record));
    added_records.push_back(key);
    image = std::move(next_image);
    config = image->config;
    PrintId();
    return Status::Ok();
  }

  // Unpacks a new layer blob into layers/ so later steps (and mounts) can use it.
  Status AddLayer(const LayerBlob& layer) {
    added.blobs.push_back(layer.blob.digest);
    if (!layers.Has(layer.diff_id)) added.diff_ids.push_back(layer.diff_id);
    return layers.Ensure({{layer.blob.digest, layer.diff_id}});
  }

  // A step that only changes the config.
  template <class Mutate>
  Status MetaStep(const std::string& created_by, Mutate mutate) {
    Digest key = StepKey(Parent(), created_by, "");
    ASSIGN_OR_RETURN(bool hit, TryCache(key));
    if (hit) return Status::Ok();
    RETURN_IF_ERROR(mutate(Cfg()));
    return Commit(key, created_by, std::nullopt);
  }

  Status Env(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKeyValues(ins.args, Vars(), df.escape, true, false));
    std::vector<std::string> texts;
    texts.reserve(kvs.size());
    for (const auto& kv : kvs) texts.push_back(kv.key + "=" + kv.value);
    return MetaStep("ENV " + Join(texts, " "), [&](nlohmann::json& c) {
      for (const auto& kv : kvs) SetEnv(&c["Env"], kv.key, kv.value);
      return Status::Ok();
    });
  }

  Status Label(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKeyValues(ins.args, Vars(), df.escape, true, false));
    std::vector<std::string> texts;
    texts.reserve(kvs.size());
    for (const auto& kv : kvs) texts.push_back(kv.key + "=" + kv.value);
    return MetaStep("LABEL " + Join(texts, " "), [&](nlohmann::json& c) {
      if (!c["Labels"].is_object()) c["Labels"] = nlohmann::json::object();
      for (const auto& kv : kvs) c["Labels"][kv.key] = kv.value;
      return Status::Ok();
    });
  }

  Status Workdir(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::string dir, ExpandWord(ins.args, Vars(), df.escape));
    std::string resolved = ResolvePath(Cfg().value("WorkingDir", std::string("/")), dir);
    return MetaStep("WORKDIR " + resolved, [&](nlohmann::json& c) {
      c["WorkingDir"] = resolved;
      return Status::Ok();
    });
  }

  Status User(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::string user, ExpandWord(ins.args, Vars(), df.escape));
    return MetaStep("USER " + user, [&](nlohmann::json& c) {
      c["User"] = user;
      return Status::Ok();
    });
  }

  Status Expose(const DockerfileInstruction& ins) {
    ASSIGN_OR_RETURN(std::vector<std::string> words, ExpandWords(ins.args, Vars(), df.escape));
    std::set<std::string> ports;
    for (std::string p : words) {
      if (p.find('/') == std::string::npos) p += "/tcp";
      ports.insert(p);
    }
    std::string text;
    for (const auto& p : ports) text += (text.empty() ? "" : " ") + p + ":{}";
    return MetaStep("EXPOSE map[" + text + "]", [&](nlohmann::json& c) {
      if (!c["ExposedPorts"].is_object()) c["ExposedPorts"] = nlohmann::json::object();
      for (const auto& p : ports) c["ExposedPorts"][p] = nlohmann::json::object();
      return Status::Ok();
    });
  }

  Status Volume(const DockerfileInstruction& ins) {
    std::vector<std::string> vols;
    if (ins.exec_form) {
      for (const auto& a : ins.exec_args) {
        ASSIGN_OR_RETURN(std::string v, ExpandWord(a, Vars(), df.escape));
        vols.push_back(v);
      }
    } else {
      ASSIGN_OR_RETURN(vols, ExpandWords(ins.args, Vars(), df.escape));
    }
    return MetaStep("VOLUME [" + Join(vols, " ") + "]", [&](nlohmann::json& c) {
      if (!c["Volumes"].is_object()) c["Volumes"] = nlohmann::json::object();
      for (const auto& v : vols) c["Volumes"][v] = nlohmann::json::object();
      return Status::Ok();
    });
  }

  std::vector<std::string> Shell() {
    std::vector<std::string> shell = StringArray(Cfg().value("Shell", nlohmann::json()));
    return shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : shell;
  }

  Status ExecSetting(const DockerfileInstruction& ins) {
    const std::string& k = ins.keyword;
    if (k == "SHELL" && !ins.exec_form) return Status::Error(EINVAL, "SHELL requires the JSON form: SHELL [\"executable\", \"parameters\"]");
    std::vector<std::string> value = ins.exec_args;
    if (!ins.exec_form) {
      value = Shell();
      value.push_back(ins.args);
    }
    std::string field = k == "CMD" ? "Cmd" : k == "ENTRYPOINT" ? "Entrypoint"
                                                               : "Shell";
    bool reset_cmd = k == "ENTRYPOINT" && !cmd_set;
    if (k == "CMD") cmd_set = true;
    return MetaStep(k + " " + ExecFormText(value), [&](nlohmann::json& c) {
      c[field] = value;
      if (reset_cmd) c["Cmd"] = nullptr;
      return Status::Ok();
    });
  }

  // ---- COPY / ADD ----

  Result<ChainView> View() { return ChainView::Open(store(), DiffIds()); }

  Status Copy(const DockerfileInstruction& ins) {
    VarMap vars = Vars();
    std::vector<std::string> words;
    if (ins.exec_form) {
      for (const auto& a : ins.exec_args) {
        ASSIGN_OR_RETURN(std::string w, ExpandWord(a, vars, df.escape));
        words.push_back(w);
      }
    } else {
      ASSIGN_OR_RETURN(words, ExpandWords(ins.args, vars, df.escape));
    }
    if (words.size() < 2) return Status::Error(EINVAL, ins.keyword + " requires at least a source and a destination");
    ASSIGN_OR_RETURN(ChainView view, View());
    CopyRequest req;
    req.context = opts.context;
    req.ignore = &ignore;
    req.sources.assign(words.begin(), words.end() - 1);
    req.add = ins.keyword == "ADD";
    std::string dest = words.back();
    std::string workdir = Cfg().value("WorkingDir", std::string("/"));
    req.dest = ResolvePath(workdir, dest) + (dest.ends_with("/") || dest == "." ? "/" : "");
    std::string flags;
    for (const auto& [name, value] : ins.flags) {
      ASSIGN_OR_RETURN(std::string v, ExpandWord(value, vars, df.escape));
      if (name == "chown") {
        ASSIGN_OR_RETURN(Ownership own, ResolveChown(view, v));
        req.uid = own.uid;
        req.gid = own.gid;
      }
      if (name == "chmod") {
        char* end = nullptr;
        unsigned long mode = std::strtoul(v.c_str(), &end, 8);
        if (v.empty() || *end || mode > 07777) return Status::Error(EINVAL, "--chmod=" + v + ": not an octal mode");
        req.chmod = static_cast<uint32_t>(mode);
      }
      flags += "--" + name + (value.empty() ? "" : "=" + v) + " ";
    }
    ASSIGN_OR_RETURN(CopyPlan plan, PlanCopy(req, view));
    std::string created_by = ins.keyword + " " + flags + Join(words, " ") + " # buildkit";
    Digest key = StepKey(Parent(), created_by, plan.content_hash);
    ASSIGN_OR_RETURN(bool hit, TryCache(key));
    if (hit) return Status::Ok();
    ASSIGN_OR_RETURN(LayerBlob layer, WriteCopyLayer(store(), plan));
    RETURN_IF_ERROR(AddLayer(layer));
    return Commit(key, created_by, layer);
  }

  // ---- RUN ----

  Status Run(const DockerfileInstruction& ins) {
    std::vector<std::string> argv = ins.exec_form ? ins.exec_args : Shell();
    if (!ins.exec_form) argv.push_back(ins.args);
    std::string prefix;
    if (!arg_order.empty()) {
      prefix = "|" + std::to_string(arg_order.size()) + " ";
      for (const auto& k : arg_order) prefix += k + "=" + args[k] + " ";
    }
    std::string created_by = "RUN " + prefix + Join(argv, " ") + " # buildkit";
    Digest key = StepKey(Parent(), created_by, "");
    ASSIGN_OR_RETURN(bool hit, TryCache(key));
    if (hit) return Status::Ok();
    if (!b.run_) return Status::Error(ENOTSUP, "RUN is not available in this build of layerfs");
    ASSIGN_OR_RETURN(RunExecutor::Request req, RunRequest(argv));
    Digest chain = ChainId(req.layers);
    std::error_code ec;
    if (!chain.empty() && !std::filesystem::exists(store().chain_dir(chain), ec)) added.chains.push_back(chain);
    Print(" ---> Running " + ExecFormText(argv));
    ASSIGN_OR_RETURN(RunExecutor::Outcome out, b.run_->Run(req));
    if (out.exit_code != 0) {
      b.failed_run_exit_code_ = out.exit_code;
      return Status::Error(EINVAL, "the command '" + Join(argv, " ") + "' returned a non-zero code: " +
                                       std::to_string(out.exit_code));
    }
    RETURN_IF_ERROR(AddLayer(out.layer));
    return Commit(key, created_by, out.layer);
  }

  Result<RunExecutor::Request> RunRequest(const std::vector<std::string>& argv) {
    RunExecutor::Request req;
    if (!image) return Status::Error(EINVAL, "RUN on an empty (scratch) image: there is nothing to run");
    req.image = *image;
    req.layers = DiffIds();
    req.argv = argv;
    req.workdir = Cfg().value("WorkingDir", std::string("/"));
    if (req.workdir.empty()) req.workdir = "/";
    ASSIGN_OR_RETURN(ChainView view, View());
    ASSIGN_OR_RETURN(UserIdentity user, ResolveUser(view, Cfg().value("User", std::string())));
    req.uid = user.uid;
    req.gid = user.gid;
    req.groups = user.groups;
    VarMap env;
    for (const auto& [k, v] : args) env[k] = v;  // build args: in RUN's environment, not in the image
    std::vector<std::string> image_env = StringArray(Cfg().value("Env", nlohmann::json::array()));
    for (const std::string& e : image_env) env.erase(e.substr(0, e.find('=')));
    req.env = image_env;
    for (const auto& [k, v] : env) req.env.push_back(k + "=" + v);
    auto has = [&](const std::string& k) {
      for (const auto& e : req.env)
        if (e.rfind(k + "=", 0) == 0) return true;
      return false;
    };
    if (!has("PATH")) req.env.push_back(std::string("PATH=") + kDefaultPath);
    if (!has("HOME")) req.env.push_back("HOME=" + user.home);
    return req;
  }
};

ImageBuilder::ImageBuilder(const Store& store, RunExecutor* run, std::function<void(const std::string&)> print)
    : store_(&store), run_(run), print_(std::move(print)) {}

ImageBuilder::~ImageBuilder() = default;

Result<Image> ImageBuilder::Build(const BuildOptions& options) {
  failed_run_exit_code_ = 0;
  Impl impl(this, options);
  auto result = impl.Build();
  if (!result.ok()) impl.Rollback();
  return result;
}

}  // namespace layerfs
