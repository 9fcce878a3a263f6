// Micro-benchmarks of the merged index (fs/index/merged_index.h), the structure every lower-layer
// lookup, getattr and readdir of a mount goes through:
//   BM_LookupPath     resolve a full lower path (one binary search per component), 1 and 2 threads
//   BM_LookupChild    one component in a 1000-entry directory, 1 and 2 threads
//   BM_Merge          build the merged index of 128 layers x 1k entries (whiteouts, opaque dirs)
//   BM_LoadCached     load the persisted index of that chain (what a cached mount does)
// Each reports bytes_per_entry = index bytes / merged entries (target: <= 128).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "fs/index/merged_index.h"
#include "layerstore/base/digest.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/store/store.h"

namespace layerfs {
namespace {

std::string Numbered(const char* prefix, int n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

LayerEntry Dir(std::string path) {
  LayerEntry e;
  e.path = std::move(path);
  e.type = EntryType::kDirectory;
  e.mode = 0755;
  return e;
}

LayerEntry File(std::string path, uint64_t size) {
  LayerEntry e;
  e.path = std::move(path);
  e.type = EntryType::kRegular;
  e.mode = 0644;
  e.size = size;
  e.mtime_sec = 1700000000;
  return e;
}

LayerEntry Whiteout(std::string path) {
  LayerEntry e;
  e.path = std::move(path);
  e.type = EntryType::kWhiteout;
  return e;
}

// A rootfs-like chain: `layers` layers, the bottom one with `base_dirs` package dirs of
// `files_per_dir` files under usr/lib; each upper layer adds a package, replaces and deletes
// a few bottom files. Returns the layers and every merged file path (lookup targets).
struct Chain {
  std::vector<LayerIndex> layers;
  std::vector<std::string> paths;
};

Chain RootfsChain(int layers, int base_dirs, int files_per_dir) {
  Chain c;
  c.layers.resize(layers);
  auto& base = c.layers[0].entries();
  base.push_back(Dir("usr"));
  base.push_back(Dir("usr/lib"));
  for (int d = 0; d < base_dirs; ++d) {
    std::string dir = "usr/lib/package" + std::to_string(d);
    base.push_back(Dir(dir));
    for (int f = 0; f < files_per_dir; ++f) {
      base.push_back(File(dir + "/file" + std::to_string(f) + ".so", 4096 + f));
      c.paths.push_back(base.back().path);
    }
  }
  for (int l = 1; l < layers; ++l) {
    auto& up = c.layers[l].entries();
    up.push_back(Dir("usr"));
    up.push_back(Dir("usr/lib"));
    std::string dir = "usr/lib/added" + std::to_string(l);
    up.push_back(Dir(dir));
    for (int f = 0; f < files_per_dir; ++f) up.push_back(File(dir + "/file" + std::to_string(f), 100));
    std::string victim = "usr/lib/package" + std::to_string(l % base_dirs);
    up.push_back(Dir(victim));
    up.push_back(Whiteout(victim + "/file1.so"));
    up.push_back(File(victim + "/file2.so", 7));
  }
  for (auto& layer : c.layers) layer.Sort();
  return c;
}

// 128 layers x 1k entries: every layer holds the same 10 dirs, 99 files of its own per dir
// (so directories merge across all layers) and deletes one file of the layer below.
std::vector<LayerIndex> DeepChain() {
  std::vector<LayerIndex> layers(128);
  for (int l = 0; l < 128; ++l) {
    auto& e = layers[l].entries();
    for (int d = 0; d < 10; ++d) {
      std::string dir = Numbered("d", d);
      e.push_back(Dir(dir));
      for (int f = 0; f < 99; ++f) e.push_back(File(dir + "/l" + std::to_string(l) + "f" + std::to_string(f), 64));
      if (l > 0) e.push_back(Whiteout(dir + "/l" + std::to_string(l - 1) + "f0"));
    }
    layers[l].Sort();
  }
  return layers;
}

std::vector<const LayerIndex*> Pointers(const std::vector<LayerIndex>& layers) {
  std::vector<const LayerIndex*> out;
  out.reserve(layers.size());
  for (const auto& l : layers) out.push_back(&l);
  return out;
}

Digest SomeChain() { return Sha256Of("bench chain"); }

MergedIndex BuildOrDie(const std::vector<LayerIndex>& layers) {
  auto index = MergedIndex::Build(Pointers(layers), SomeChain());
  if (!index.ok()) {
    std::fprintf(stderr, "merged index build failed: %s\n", index.status().message().c_str());
    std::abort();
  }
  return std::move(index).value();
}

struct RootfsFixture {
  Chain chain = RootfsChain(6, 500, 100);  // ~50k merged entries
  MergedIndex index = BuildOrDie(chain.layers);
};

RootfsFixture& Rootfs() {
  static RootfsFixture* f = new RootfsFixture();
  return *f;
}

void BM_LookupPath(benchmark::State& state) {
  auto& f = Rootfs();
  std::mt19937 rng(state.thread_index());
  std::uniform_int_distribution<size_t> pick(0, f.chain.paths.size() - 1);
  size_t found = 0;
  for (auto _ : state) {
    auto hit = f.index.LookupPath(f.chain.paths[pick(rng)]);
    found += hit.has_value();
    benchmark::DoNotOptimize(hit);
  }
  state.counters["found_ratio"] = benchmark::Counter(double(found) / state.iterations(), benchmark::Counter::kAvgThreads);
  state.counters["entries"] = benchmark::Counter(f.index.size(), benchmark::Counter::kAvgThreads);
  state.counters["bytes_per_entry"] =
      benchmark::Counter(double(f.index.bytes()) / f.index.size(), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_LookupPath)->Threads(1)->Threads(2)->UseRealTime();

void BM_LookupChild(benchmark::State& state) {
  auto& f = Rootfs();
  auto dir = f.index.LookupPath("usr/lib/package7");
  if (!dir) {
    state.SkipWithError("usr/lib/package7 missing from the merged index");
    return;
  }
  std::vector<std::string> names;
  names.reserve(100);
  for (int i = 0; i < 100; ++i) names.push_back(Numbered("file", i) + ".so");
  std::mt19937 rng(state.thread_index());
  for (auto _ : state) benchmark::DoNotOptimize(f.index.Lookup(*dir, names[rng() % names.size()]));
}
BENCHMARK(BM_LookupChild)->Threads(1)->Threads(2)->UseRealTime();

void BM_Merge(benchmark::State& state) {
  auto layers = DeepChain();
  auto ptrs = Pointers(layers);
  uint32_t entries = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    auto index = MergedIndex::Build(ptrs, SomeChain());
    if (!index.ok()) {
      state.SkipWithError(index.status().message().c_str());
      return;
    }
    entries = index->size();
    bytes = index->bytes();
  }
  state.counters["layers"] = 128;
  state.counters["entries"] = entries;
  state.counters["bytes_per_entry"] = double(bytes) / entries;
}
BENCHMARK(BM_Merge)->Unit(benchmark::kMillisecond);

void BM_LoadCached(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("merged_index_bench." + std::to_string(getpid()));
  auto store = Store::Open(dir);
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  auto layers = DeepChain();
  auto built = BuildOrDie(layers);
  auto file = dir / "merged";
  if (auto st = built.Write(*store, file); !st.ok()) {
    state.SkipWithError(st.message().c_str());
    std::filesystem::remove_all(dir);
    return;
  }
  for (auto _ : state) {
    auto loaded = MergedIndex::Load(file, SomeChain(), 128);
    if (!loaded.ok()) {
      state.SkipWithError(loaded.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(loaded->size());
  }
  state.counters["file_bytes_per_entry"] = double(std::filesystem::file_size(file)) / built.size();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_LoadCached)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace layerfs
