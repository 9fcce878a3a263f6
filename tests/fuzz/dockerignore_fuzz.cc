// A .dockerignore from a build context: DockerIgnore::Parse, then matching the paths a build
// context walk asks about (fixed ones and each pattern's own text taken as a path).
#include "layerstore/build/dockerignore.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view text = fuzz::AsText(data, size);
  auto ignore = DockerIgnore::Parse(text);
  if (!ignore.ok()) return 0;
  for (std::string_view path : {"Dockerfile", "src/main.cc", "node_modules/a/b.js", ".git/HEAD", "a", ""}) {
    (void)ignore->Excluded(path);
    (void)ignore->MayReinclude(path);
  }
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    (void)ignore->Excluded(text.substr(start, end - start));
    (void)ignore->MayReinclude(text.substr(start, end - start));
    start = end + 1;
  }
  return 0;
}
