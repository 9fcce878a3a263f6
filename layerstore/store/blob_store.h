// BlobStore: immutable, verified, content-addressed blobs under <root>/blobs/sha256/.
// A blob becomes visible only after its bytes hashed to its digest; it is written to tmp/
// first and renamed into place. Putting a blob that exists is a cheap no-op.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/base/digest.h"
#include "layerstore/store/store.h"

namespace layerfs {

// A writer for one blob whose digest is known up front (pull) or not (commit, import).
// Write() streams bytes while hashing; Commit() verifies and renames. Destroying an
// uncommitted writer removes its temp file.
class BlobWriter {
 public:
  BlobWriter(BlobWriter&&) noexcept;
  ~BlobWriter();
  Status Write(const void* data, size_t len);
  uint64_t bytes_written() const;
  // Verifies against the expected digest (if one was given) and publishes the blob.
  Result<Digest> Commit();

 private:
  friend class BlobStore;
  struct Impl;
  explicit BlobWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class BlobStore {
 public:
  explicit BlobStore(const Store& store) : store_(&store) {}

  bool Has(const Digest& d) const;
  Result<uint64_t> Size(const Digest& d) const;
  fs::path Path(const Digest& d) const { return store_->blob_path(d); }

  // expected empty: digest computed and returned by Commit().
  Result<BlobWriter> NewWriter(const Digest& expected = Digest()) const;
  Result<Digest> PutBytes(std::string_view bytes, const Digest& expected = Digest()) const;
  // Copies (streams) a file in, verifying against expected if given.
  Result<Digest> PutFile(const fs::path& file, const Digest& expected = Digest()) const;
  Result<std::string> ReadAll(const Digest& d) const;  // for small JSON blobs
  Status Remove(const Digest& d) const;
  std::vector<Digest> List() const;

 private:
  const Store* store_;
};

}  // namespace layerfs
