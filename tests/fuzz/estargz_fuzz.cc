// What a registry serves as an eStargz layer and a lazy pull reads piecewise: the footer (the
// blob's last 51 bytes), the TOC member it points at (gzip, tar, JSON) and each chunk's member,
// checked against the TOC's chunkDigest; and the TOC JSON on its own. The input is a whole blob.
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_reader.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view blob = fuzz::AsText(data, size);
  (void)ParseEstargzToc(blob, size);
  if (size < kEstargzFooterSize) return 0;
  auto toc_offset = ParseEstargzFooter(blob.substr(size - kEstargzFooterSize));
  if (!toc_offset.ok() || *toc_offset >= size - kEstargzFooterSize) return 0;
  auto toc = ReadEstargzToc(blob.substr(*toc_offset, size - kEstargzFooterSize - *toc_offset), *toc_offset, Digest());
  if (!toc.ok()) return 0;
  (void)EstargzTocJson(*toc);
  for (const auto& [name, chunks] : EstargzChunks(*toc, *toc_offset))
    for (const EstargzChunk& c : chunks) (void)ReadEstargzChunk(blob.substr(c.offset, c.end - c.offset), c);
  return 0;
}
