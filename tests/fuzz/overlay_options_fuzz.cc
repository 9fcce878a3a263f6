// The -o argument containers/storage (or whoever runs `layerfs-overlay`) passes:
// SplitOverlayOptions and ParseOverlayOptions, which include the uidmapping=/gidmapping=
// lists (IdMap::Parse); the maps a parse accepts are then applied to a few ids.
#include "fs/mount/overlay_options.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view text = fuzz::AsText(data, size);
  auto options = ParseOverlayOptions(SplitOverlayOptions(text), "/mnt/fuzz");
  if (options.ok()) {
    const OwnerPolicy& owners = options->config.owners;
    for (uint32_t id : {0u, 1u, 1000u, 65534u, 100000u, 0xffffffffu})
      (void)(owners.ShownUid(id) + owners.ShownGid(id) + owners.uids.Stored(id) + owners.gids.Stored(id));
  }
  auto ids = IdMap::Parse(text, "uidmapping");
  if (ids.ok())
    for (uint32_t id : {0u, 1000u, 0xffffffffu}) (void)(ids->Shown(id) + ids->Stored(id));
  return 0;
}
