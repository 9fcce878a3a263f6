// containerd's List filters and the keys and labels of snapshot requests, as they reach
// `layerfs snapshotter` over its socket: SnapshotFilter::Parse and Matches, ValidateName and
// ValidateLabels. The input is split at NUL bytes: filters, then a key, a label key and value.
#include <map>
#include <string>
#include <vector>

#include "layerstore/snapshots/snapshot_catalog.h"
#include "layerstore/snapshots/snapshot_filter.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace layerfs;
  std::string_view text = fuzz::AsText(data, size);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t nul; (nul = text.find('\0', start)) != std::string_view::npos; start = nul + 1)
    parts.emplace_back(text.substr(start, nul - start));
  parts.emplace_back(text.substr(start));

  SnapshotInfo info;
  info.name = parts.size() > 1 ? parts[1] : "default/1/extract-1 sha256:0";
  info.parent = "sha256:0";
  info.kind = SnapshotKind::kCommitted;
  if (parts.size() > 2) info.labels[parts[2]] = parts.size() > 3 ? parts[3] : "";
  info.labels["containerd.io/snapshot.ref"] = "sha256:1";
  (void)ValidateName(info.name);
  (void)ValidateLabels(info.labels);

  std::vector<std::string> filters;
  for (size_t cut; !parts[0].empty() && (cut = parts[0].find('\n')) != std::string::npos;) {
    filters.push_back(parts[0].substr(0, cut));
    parts[0].erase(0, cut + 1);
  }
  filters.push_back(parts[0]);
  auto filter = SnapshotFilter::Parse(filters);
  if (filter.ok()) (void)filter->Matches(info);
  return 0;
}
