// PartialImage: what `images` and `ps` show of an image mounted lazily (`mount --lazy`) while
// its layers are still arriving. The store records the image only once every layer is local
// (lazy_image.h), so the lazy mount keeps this in its container's directory (lazy.json): the
// reference, ids, creation time and layers. LocalBytes counts the image's blob bytes that are
// local: a layer in layers/ whole; a lazy layer by what its sparse blob file holds (every
// fetched range is written there; counted in allocated blocks, so within a block of each
// range); a layer not yet opened, nothing. It reads the store only: any process may ask.
// Remounting such a container (`mount --name`) pulls it lazily again from this record.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layerstore/lazy/lazy_image.h"
#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct PartialImage {
  std::string ref;
  Digest manifest_digest;
  Digest config_digest;
  std::string created;             // the config's
  std::vector<Descriptor> layers;  // the manifest's, bottom first
  std::vector<Digest> diff_ids;    // the config's
  // The pull's --insecure-registry hosts: a remount resumes from the same registry as it was.
  std::vector<std::string> insecure_registries;

  static PartialImage Of(const LazyImage& lazy, const LazyPullOptions& options);
};

Status WritePartialImage(const std::filesystem::path& file, const PartialImage& image);
Result<PartialImage> ReadPartialImage(const std::filesystem::path& file);

struct LocalBytes {
  uint64_t local = 0;
  uint64_t total = 0;     // the layers' blob sizes
  bool complete = false;  // every layer is in layers/
  unsigned Percent() const { return total == 0 ? 100 : static_cast<unsigned>(local * 100 / total); }
};
LocalBytes LocalBytesOf(const Store& store, const PartialImage& image);
// {"LocalBytes", "TotalBytes", "Percent"}: what `images` and `ps` print with --format json.
nlohmann::json LocalBytesJson(const LocalBytes& local);

}  // namespace layerfs
