// UnpackLayer on a hostile layer blob (tar, tar.gz or tar.zst, detected from the bytes as the
// store does), into a scratch tree: TreeWriter's containment rules must hold and nothing may
// crash. Afterwards every indexed path must be inside the tree (no "..", no leading "/").
#include <cstdlib>

#include "layerstore/layer/layer_index.h"
#include "layerstore/layer/layer_unpack.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

bool EscapesTree(const std::string& path) {
  if (path.starts_with("/")) return true;
  for (size_t start = 0; start <= path.size();) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (path.compare(start, slash - start, "..") == 0 && slash - start == 2) return true;
    start = slash + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  fuzz::ClearScratch();
  auto blob = fuzz::WriteScratchFile("layer.blob", fuzz::AsText(data, size));
  auto tree = fuzz::ScratchDir() / "tree";
  std::filesystem::create_directory(tree);
  LayerIndex index;
  auto diff_id = UnpackLayer(blob, tree, &index);
  if (diff_id.ok()) {
    for (const LayerEntry& e : index.entries())
      if (EscapesTree(e.path)) std::abort();  // an index path that leaves the layer
  }
  return 0;
}
