// unpack_driver: times the store's unpack paths for bench/unpack_bench.sh (no Google Benchmark).
//
//   unpack_driver unpack BLOB TREE_DIR
//       UnpackLayer(BLOB) into TREE_DIR (existing, empty); prints "<seconds> <diff_id>".
//   unpack_driver ensure ROOT seq|par BLOB1 BLOB_DIGEST1 DIFF_ID1 [BLOB2 BLOB_DIGEST2 DIFF_ID2 ...]
//       Opens a store at ROOT, hard-links the blobs in (untimed), then times LayerStore::Ensure:
//       all layers in one call (par) or one call per layer (seq). Prints "<seconds>".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "layerstore/layer/layer_unpack.h"
#include "layerstore/store/layer_store.h"

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int Fail(const std::string& msg) {
  std::fprintf(stderr, "unpack_driver: %s\n", msg.c_str());
  return 1;
}

int Unpack(const char* blob, const char* tree) {
  layerfs::LayerIndex index;
  auto t0 = Clock::now();
  auto diff_id = layerfs::UnpackLayer(blob, tree, &index);
  double secs = Since(t0);
  if (!diff_id.ok()) return Fail(diff_id.status().message());
  std::printf("%.3f %s\n", secs, diff_id->str().c_str());
  return 0;
}

int Ensure(int argc, char** argv) {
  auto store = layerfs::Store::Open(argv[2]);
  if (!store.ok()) return Fail(store.status().message());
  bool parallel = std::string(argv[3]) == "par";
  std::vector<layerfs::LayerRequest> reqs;
  for (int i = 4; i + 2 < argc; i += 3) {
    auto blob = layerfs::Digest::Parse(argv[i + 1]);
    auto diff_id = layerfs::Digest::Parse(argv[i + 2]);
    if (!blob.ok() || !diff_id.ok()) return Fail("bad digest argument");
    if (::link(argv[i], store->blob_path(*blob).c_str()) != 0) return Fail(std::string("link ") + argv[i]);
    reqs.push_back({*blob, *diff_id});
  }
  layerfs::LayerStore layers(*store);
  auto t0 = Clock::now();
  if (parallel) {
    if (auto st = layers.Ensure(reqs); !st.ok()) return Fail(st.message());
  } else {
    for (const auto& r : reqs)
      if (auto st = layers.Ensure({r}); !st.ok()) return Fail(st.message());
  }
  std::printf("%.3f\n", Since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "unpack" && argc == 4) return Unpack(argv[2], argv[3]);
  if (mode == "ensure" && argc >= 7 && (argc - 4) % 3 == 0) return Ensure(argc, argv);
  return Fail("usage: unpack_driver unpack BLOB TREE | ensure ROOT seq|par (BLOB DIGEST DIFF_ID)...");
}
