// MergedIndex::Load of a corrupt or crafted chains/<chain>/merged file, then everything a
// mount daemon does with a loaded index: names, paths, lookups, link targets, xattrs of every
// node. Load must refuse what would make any of these read outside the mapping.
#include "fs/index/merged_index.h"
#include "layerstore/oci/image.h"
#include "tests/fuzz/fuzz_scratch.h"
#include "tests/fuzz/fuzz_seed_chain.h"

namespace {

// What the daemon's lookup, readdir, getattr, readlink and listxattr touch, for node i.
void Visit(const layerfs::MergedIndex& index, uint32_t i) {
  const layerfs::MergedNode& n = index.node(i);
  std::string path = index.Path(i);
  (void)index.LookupPath(path);
  (void)index.LinkTarget(i);
  for (const auto& [name, value] : index.Xattrs(i)) (void)(name.size() + value.size());
  (void)index.node(n.ino_node);
  if (!index.is_dir(i)) return;
  (void)index.Lookup(i, index.name(i));
  (void)index.LowerDirOf(i, "x", std::nullopt);
  for (uint32_t c = n.first_child; c < n.first_child + n.child_count; ++c) (void)index.name(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  fuzz::ClearScratch();
  auto file = fuzz::WriteScratchFile("merged", fuzz::AsText(data, size));
  // The seeds were built for this chain; a file claiming another chain is refused by Load.
  auto index = MergedIndex::Load(file, fuzz::SeedChainId(), fuzz::kSeedChainLayers);
  if (!index.ok()) return 0;
  for (uint32_t i = 0; i < index->size(); ++i) Visit(*index, i);
  return 0;
}
