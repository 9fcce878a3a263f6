// Image references from the command line, archives (RepoTags, ref.name annotations) and
// Dockerfiles (FROM): ParseReference, and the normalised form must parse back to itself.
#include <cstdlib>

#include "layerstore/oci/reference.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view text = fuzz::AsText(data, size);
  (void)FamiliarString(text);
  auto ref = ParseReference(text);
  if (!ref.ok()) return 0;
  std::string normalized = ref->String();
  auto again = ParseReference(normalized);
  if (!again.ok() || again->String() != normalized) std::abort();  // normalising is idempotent
  (void)ParseReference(ref->FamiliarString());
  (void)FamiliarString(normalized);
  return 0;
}
