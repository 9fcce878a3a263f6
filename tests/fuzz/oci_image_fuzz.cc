// The image documents a registry or an archive hands us (manifest, index / manifest list,
// config), through every parser the store uses on them: ParseManifest, ParseConfig,
// SelectPlatformManifest, the Docker-to-OCI conversion, and what inspect and history print.
// One input is tried as every kind, so a config seed also exercises the manifest parser.
#include "layerstore/oci/image.h"
#include "layerstore/oci/oci_conversion.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

using namespace layerfs;

void AsManifestAndConfig(std::string_view text) {
  Image image;
  if (!ParseManifest(text, "fuzz manifest", &image).ok()) return;
  (void)image.blobs();
  (void)image.chain_id();
  // A config is checked against its manifest's layer count; the same bytes rarely are both.
  if (!ParseConfig(text, "fuzz config", &image).ok()) return;
  (void)HistoryLayers(image);
  (void)InspectJson(image, 0).dump();
}

void AsConfigOfLayers(std::string_view text, size_t layers) {
  Image image;
  image.layers.resize(layers);
  if (!ParseConfig(text, "fuzz config", &image).ok()) return;
  (void)image.chain_id();
  (void)HistoryLayers(image);
  (void)InspectJson(image, 0).dump();
}

void AsIndex(std::string_view text) {
  auto doc = ParseJson(text, "fuzz index");
  if (!doc.ok()) return;
  (void)DocumentMediaType(*doc);
  for (const char* platform : {"", "linux/arm64/v8", "linux/arm/v7"}) {
    auto wanted = ParsePlatform(platform);
    if (wanted.ok()) (void)SelectPlatformManifest(*doc, *wanted, "fuzz index");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = fuzz::AsText(data, size);
  AsManifestAndConfig(text);
  for (size_t layers : {0, 1, 2}) AsConfigOfLayers(text, layers);
  AsIndex(text);
  (void)OciManifestFromDocker(text, Sha256Of(text), "fuzz docker manifest");
  (void)ParsePlatform(text);
  return 0;
}
