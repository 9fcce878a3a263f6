#include "fs/mount/lazy_image_lowers.h"

#include <cstdio>

namespace layerfs {

LazyImageLowers::~LazyImageLowers() {
  if (completer_.joinable()) completer_.join();
}

int LazyImageLowers::Ensure(uint32_t layer, const std::string& path, uint64_t offset, uint64_t length) {
  Status st = image_->layer(layer)->EnsureRange(path, offset, length);
  if (st.ok()) return 0;
  std::fprintf(stderr, "layerfs: read of /%s: %s\n", path.c_str(), st.message().c_str());
  return EIO;
}

void LazyImageLowers::CompleteInBackground() {
  if (completer_.joinable()) return;
  completer_ = std::thread([image = image_] {
    Status st = image->Complete();
    LazyLayerStats s = image->stats();
    if (st.ok())
      std::fprintf(stderr, "layerfs: %s complete: %llu chunks, %llu bytes in %llu requests\n", image->ref().c_str(),
                   static_cast<unsigned long long>(s.chunks), static_cast<unsigned long long>(s.fetched_bytes),
                   static_cast<unsigned long long>(s.requests));
    else
      std::fprintf(stderr, "layerfs: %s\n", st.message().c_str());
  });
}

}  // namespace layerfs
