#include "layerstore/archive/image_import.h"

#include <fstream>

#include "layerstore/base/remove_tree.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/layer/layer_unpack.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

std::string MediaTypeOf(const fs::path& file) {
  unsigned char m[4] = {0, 0, 0, 0};
  std::ifstream in(file, std::ios::binary);
  in.read(reinterpret_cast<char*>(m), 4);
  if (m[0] == 0x1f && m[1] == 0x8b) return kOciLayerGzipType;
  if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) return kOciLayerZstdType;
  return kOciLayerTarType;
}

// Unpacks into tmp/, then publishes the blob and the layer directory.
Result<Descriptor> StoreLayer(const Store& store, const fs::path& tarball, Digest* diff_id) {
  fs::path staging = store.NewTempPath("import");
  std::error_code ec;
  fs::create_directories(staging / "tree", ec);
  if (ec) return Status::Error(ec.value(), "create " + staging.string() + ": " + ec.message());
  LayerIndex index;
  auto got = UnpackLayer(tarball, staging / "tree", &index);
  Status st = got.ok() ? index.Write(staging / "index") : got.status();
  Descriptor layer{MediaTypeOf(tarball), Digest(), 0, nlohmann::json(), nlohmann::json()};
  if (st.ok()) {
    auto blob = BlobStore(store).PutFile(tarball);
    st = blob.status();
    if (blob.ok()) layer.digest = *blob;
  }
  if (st.ok() && !LayerStore(store).Has(*got) && ::rename(staging.c_str(), store.layer_dir(*got).c_str()) != 0)
    st = Status::FromErrno("layer " + got->str());
  (void)RemoveTree(staging);
  if (!st.ok()) return st;
  *diff_id = *got;
  layer.size = fs::file_size(tarball, ec);
  return layer;
}

}  // namespace

Result<Image> ImportRootfs(const Store& store, const fs::path& tarball, const ImportOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(tarball, ec)) return Status::Error(ENOENT, tarball.string() + ": no such file");
  std::string ref;
  if (!options.ref.empty()) {
    ASSIGN_OR_RETURN(ref, ImageStore::NormalizeRef(options.ref));
  }
  ImageStore::ChildSpec spec;
  ASSIGN_OR_RETURN(spec.layer, StoreLayer(store, tarball, &spec.diff_id));
  spec.history.comment = options.message.empty() ? "Imported from " + tarball.string() : options.message;
  return ImageStore(store).CreateChild(nullptr, spec, ref);
}

}  // namespace layerfs
