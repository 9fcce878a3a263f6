// ImageStore: the images of a store, kept in <root>/index.json (an OCI image index).
// Every stored image is one OCI manifest descriptor in index.json (a Docker schema2 manifest is
// kept beside its OCI conversion, oci_conversion.h); a tagged one carries its
// normalized reference in the "org.opencontainers.image.ref.name" annotation (one descriptor
// per tag); an untagged (dangling) image keeps a descriptor without it so its blobs stay used.
// Mutations take the store's exclusive lock and rewrite index.json atomically.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {

class ImageStore {
 public:
  explicit ImageStore(const Store& store) : store_(&store) {}

  // ref_or_id: a reference ("redis", "redis:7", "host:5000/a/b@sha256:..."), a full or
  // unique-prefix image ID ("sha256:ab12..", "ab12"). Unknown: ENOENT "no such image: X";
  // ambiguous prefix: EINVAL.
  Result<Image> Resolve(std::string_view ref_or_id) const;
  Result<std::vector<Image>> List() const;  // one Image per manifest, tags merged

  // Records a manifest whose blobs (manifest, config, layers) are all in the blob store,
  // tagged with `ref` (normalized here) or dangling if ref is empty. A tag moving away from
  // another image leaves that image dangling. A Docker schema2 manifest is recorded as its
  // OCI conversion (written to the blob store here); the Docker manifest blob stays.
  Status Add(const Digest& manifest_digest, std::string_view ref);
  Status Tag(std::string_view source, std::string_view target_ref);

  // A new image = base's layers + one new layer (already in the blob store), its config
  // carrying base's config with diff_ids and history extended. Used by commit and build.
  // layer may be empty (no layer, history entry gets empty_layer). Tags with `ref` if given.
  struct ChildSpec {
    Descriptor layer;  // digest empty: metadata-only step
    Digest diff_id;
    HistoryEntry history;
    nlohmann::json config_changes;  // merged into config["config"] (Env, Cmd, ...); may be null
  };
  Result<Image> CreateChild(const Image* base /* null: from scratch */, const ChildSpec& spec,
                            std::string_view ref) const;

  // index.json as records, one per descriptor, for callers that hold the exclusive lock over
  // a larger change (load, rmi, prune). Readers need no lock: index.json is replaced atomically.
  struct Record {
    Descriptor manifest;
    std::string ref;  // normalized; empty: dangling
  };
  Result<std::vector<Record>> ReadRecords() const;
  Status WriteRecords(const std::vector<Record>& records) const;
  // Tags `manifest` with ref (empty: keeps it dangling); a tag moving away from another image
  // leaves that image dangling rather than forgetting it.
  static void PutRecord(std::vector<Record>* records, const Descriptor& manifest, const std::string& ref);
  // Stores written before index.json named only OCI manifests: records every Docker schema2
  // record as its OCI conversion; returns how many changed. Caller holds the exclusive lock.
  Result<size_t> ConvertDockerRecords() const;
  // Reads and parses the manifest and config blobs (tags left empty).
  Result<Image> LoadImage(const Descriptor& manifest) const;
  // The normalized ref, or the error for an invalid one.
  static Result<std::string> NormalizeRef(std::string_view ref);

 private:
  // The descriptor index.json gets for a manifest blob: itself, or for a Docker schema2
  // manifest its OCI conversion, written to the blob store.
  Result<Descriptor> OciDescriptor(const Digest& manifest_digest) const;

  const Store* store_;
};

}  // namespace layerfs
