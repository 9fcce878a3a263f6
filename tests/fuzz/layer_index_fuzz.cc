// LayerIndex::Read of a corrupt or crafted layers/<diff_id>/index file: an error, never a
// crash or a huge allocation; what it accepts must write back and read again to the same index.
//
// The file ends in an FNV-1a-64 of the bytes before it (layer_index.cc), which random
// mutations almost never keep right: most mutants get their trailer recomputed, as someone
// crafting a file would do, so the fuzzer reaches the entry decoder behind the check.
#include <cstdlib>
#include <cstring>

#include "layerstore/layer/layer_index.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

constexpr size_t kTrailerSize = 8;

uint64_t Fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size < kTrailerSize || seed % 8 == 0) return size;  // some keep a wrong checksum
  uint64_t sum = Fnv1a64(data, size - kTrailerSize);      // little-endian, as the file stores it
  std::memcpy(data + size - kTrailerSize, &sum, kTrailerSize);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  fuzz::ClearScratch();
  auto file = fuzz::WriteScratchFile("index", fuzz::AsText(data, size));
  auto index = LayerIndex::Read(file);
  if (!index.ok()) return 0;
  (void)LayerContentSize(*index);
  auto copy = fuzz::ScratchDir() / "index.again";
  if (!index->Write(copy).ok()) std::abort();
  auto again = LayerIndex::Read(copy);
  if (!again.ok() || again->entries() != index->entries()) std::abort();  // Write/Read round-trip
  return 0;
}
