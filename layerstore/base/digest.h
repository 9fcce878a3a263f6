// Content digests ("sha256:<64 hex>") and streaming SHA-256 over OpenSSL EVP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "layerstore/base/status.h"

namespace layerfs {

class Digest {
 public:
  Digest() = default;
  // Accepts only "sha256:" followed by exactly 64 lowercase hex digits.
  static Result<Digest> Parse(std::string_view text);
  static Digest FromHex(std::string hex);  // hex must be 64 lowercase hex digits

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }         // "sha256:<hex>"
  std::string short_id() const { return hex_.substr(0, 12); }  // Docker's 12-char IMAGE ID
  bool empty() const { return hex_.empty(); }
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// Incremental SHA-256. Update() any number of times, then Finish() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

Digest Sha256Of(std::string_view bytes);
Result<Digest> Sha256OfFile(const std::filesystem::path& file);

}  // namespace layerfs

template <>
struct std::hash<layerfs::Digest> {
  size_t operator()(const layerfs::Digest& d) const noexcept { return std::hash<std::string>()(d.hex()); }
};
