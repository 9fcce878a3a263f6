#include "layerstore/base/base64.h"

#include <openssl/evp.h>

namespace layerfs {

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return Status::Error(EINVAL, "bad base64");
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return Status::Error(EINVAL, "bad base64");
  size_t pad = 0;
  for (size_t k = text.size(); k > 0 && text[k - 1] == '='; --k) ++pad;
  // Base64 pads with at most two '='; more ("====") decodes to fewer bytes than the padding.
  if (pad > 2 || static_cast<size_t>(n) < pad) return Status::Error(EINVAL, "bad base64");
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace layerfs
