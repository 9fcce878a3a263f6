// LazyImageLowers: the engine's LazyLowers (fs/engine/lazy_lowers.h) over a LazyImage, for
// `layerfs mount --lazy`. A read's range goes to LazyLayer::EnsureRange; a failure is logged
// (one line on stderr: the daemon's log) and the reader gets EIO. CompleteInBackground() runs
// LazyImage::Complete on a thread of its own once the mount serves; the layers stay lazy for
// this mount's life (no passthrough) even after they completed, the next mount of the image
// reads them as ordinary layers.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "fs/engine/lazy_lowers.h"
#include "layerstore/lazy/lazy_image.h"

namespace layerfs {

class LazyImageLowers : public LazyLowers {
 public:
  explicit LazyImageLowers(std::shared_ptr<LazyImage> image) : image_(std::move(image)) {}
  ~LazyImageLowers() override;  // waits for the background fetch to end

  bool IsLazy(uint32_t layer) const override { return image_->layer(layer) != nullptr; }
  const LayerIndex& Index(uint32_t layer) const override { return image_->layer(layer)->index(); }
  std::string TreeDir(uint32_t layer) const override { return image_->layer(layer)->tree_dir().string(); }
  int Ensure(uint32_t layer, const std::string& path, uint64_t offset, uint64_t length) override;

  // Once: starts the background fetch; its end (the stats, or the error) is one line on stderr.
  void CompleteInBackground();

 private:
  std::shared_ptr<LazyImage> image_;
  std::thread completer_;
};

}  // namespace layerfs
