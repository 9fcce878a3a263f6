// ImageBuilder: `layerfs build`. Runs a Dockerfile's instructions in order on top of its FROM
// image, one step each: RUN, COPY and ADD make one layer, the others one `empty_layer` history
// entry, every step a new (intermediate) image whose config digest keys the next step's cache
// lookup (build_cache.h). The first miss runs its step and every later one; --no-cache runs all.
//
// Intermediate images live only as blobs held by cache records; the final image is added to
// index.json (tagged, or dangling without tags). A failing step (a RUN's non-zero exit, a
// missing COPY source) leaves the store as it was: everything this build added (blobs, layers,
// cache records, merged indexes) is removed again, and no tag moves.
//
// RUN itself is delegated to a RunExecutor (fs/container/run_step.h: a layerfs mount, namespaces,
// chroot), so this library needs no FUSE.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "layerstore/build/layer_tar_writer.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

class RunExecutor {
 public:
  struct Request {
    Image image;                    // the current (intermediate) image the command runs on
    std::vector<Digest> layers;     // its diff_ids, bottom first
    std::vector<std::string> argv;  // SHELL + command, or the exec form
    std::vector<std::string> env;   // KEY=VALUE, PATH and HOME filled in
    std::string workdir;            // absolute; created when missing
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::vector<uint32_t> groups;  // supplementary groups
  };
  struct Outcome {
    int exit_code = 0;  // 128+N when killed by signal N
    LayerBlob layer;    // the container's changes; set only when exit_code == 0
  };
  virtual ~RunExecutor() = default;
  // The command's stdout/stderr go to the caller's stdout/stderr as they come.
  virtual Result<Outcome> Run(const Request& request) = 0;
};

struct BuildOptions {
  std::filesystem::path context;
  std::filesystem::path dockerfile;  // empty: <context>/Dockerfile
  std::vector<std::string> tags;
  std::map<std::string, std::string> build_args;
  bool no_cache = false;
};

class ImageBuilder {
 public:
  // print: receives each progress line ("Step 2/5 : COPY a /a", " ---> CACHED", ...).
  ImageBuilder(const Store& store, RunExecutor* run, std::function<void(const std::string&)> print);
  ~ImageBuilder();

  Result<Image> Build(const BuildOptions& options);
  // After a failed Build: the exit code of the RUN that failed, or 0 if something else failed.
  int failed_run_exit_code() const { return failed_run_exit_code_; }

 private:
  struct Impl;
  const Store* store_;
  RunExecutor* run_;
  std::function<void(const std::string&)> print_;
  int failed_run_exit_code_ = 0;
};

// `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit`-style CREATED BY texts, exposed for tests.
std::string ExecFormText(const std::vector<std::string>& args);  // ["a" "b"] as docker history shows

}  // namespace layerfs
