// Base64 (RFC 4648, with padding) for the JSON documents that carry bytes as text: Docker's
// credentials ("auth") and eStargz TOC xattrs. Decode refuses what is not canonical base64.
#pragma once

#include <string>
#include <string_view>

#include "layerstore/base/status.h"

namespace layerfs {

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace layerfs
