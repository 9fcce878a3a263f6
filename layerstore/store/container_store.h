// ContainerStore: writable containers under <root>/containers/<id>/.
//   upper/           the container's changes (format: README "Upper directory format")
//   work/            staging for atomic copy-up (same filesystem as upper/)
//   container.json   this record
// A container pins its image: rmi refuses to delete an image a container uses (unless forced).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

struct ContainerRecord {
  std::string id;         // 64 lowercase hex
  std::string name;       // unique; generated ("layerfs_<12 hex>") when not given
  std::string image_ref;  // what the user asked for, normalized when it was a reference
  Digest image_id;        // config digest
  Digest manifest_digest;
  std::string mountpoint;  // absolute; empty when not mounted
  int daemon_pid = 0;      // FUSE daemon while mounted
  int64_t created_unix = 0;
};

class ContainerStore {
 public:
  explicit ContainerStore(const Store& store) : store_(&store) {}

  Result<ContainerRecord> Create(const Image& image, std::string_view image_ref, std::string_view name) const;
  // By name, full id or unique id prefix.
  Result<ContainerRecord> Get(std::string_view name_or_id) const;
  std::vector<ContainerRecord> List() const;
  Status Update(const ContainerRecord& record) const;
  Status Remove(std::string_view id) const;  // deletes the whole directory

  fs::path dir(std::string_view id) const { return store_->containers_dir() / std::string(id); }
  fs::path upper_dir(std::string_view id) const { return dir(id) / "upper"; }
  fs::path work_dir(std::string_view id) const { return dir(id) / "work"; }
  // A lazily mounted container's image until the store records it (layerstore/lazy/partial_image.h).
  fs::path partial_image_file(std::string_view id) const { return dir(id) / "lazy.json"; }

 private:
  const Store* store_;
};

}  // namespace layerfs
