// What a registry (or anyone on the way to it) answers and the client parses: the
// WWW-Authenticate challenge of a 401, a token server's JSON answer, base64 credentials from
// ~/.docker/config.json, the raw header lines curl hands over and a Range reply's
// Content-Range.
#include "layerstore/registry/http_headers.h"
#include "layerstore/registry/registry_auth.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view text = fuzz::AsText(data, size);
  if (auto header = ParseHeaderLine(text)) {
    (void)ContentRangeStart(header->second);
    (void)ParseChallenge(header->second);
  }
  (void)ContentRangeStart(text);
  (void)ParseChallenge(text);
  (void)ParseTokenResponse(text);
  auto decoded = Base64Decode(text);
  if (decoded.ok()) (void)Base64Encode(*decoded);
  return 0;
}
