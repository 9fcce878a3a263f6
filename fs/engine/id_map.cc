#include "fs/engine/id_map.h"

#include <charconv>
#include <string>

namespace layerfs {

namespace {

bool ParseU32(std::string_view s, uint32_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool Overlaps(uint64_t a, uint64_t asize, uint64_t b, uint64_t bsize) { return a < b + bsize && b < a + asize; }

}  // namespace

Result<IdMap> IdMap::Parse(std::string_view text, std::string_view what) {
  std::vector<uint32_t> numbers;
  for (size_t start = 0;;) {
    size_t colon = text.find(':', start);
    std::string_view part = text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (part.empty() && colon != std::string_view::npos) {  // containers/storage's leading ':'
      start = colon + 1;
      continue;
    }
    uint32_t v = 0;
    if (!ParseU32(part, &v))
      return Status::Error(EINVAL, std::string(what) + ": \"" + std::string(part) + "\" is not a number (format CONTAINER:HOST:SIZE[:...])");
    numbers.push_back(v);
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (numbers.size() % 3 != 0)
    return Status::Error(EINVAL, std::string(what) + ": expects CONTAINER:HOST:SIZE triples, got " + std::to_string(numbers.size()) + " numbers");
  IdMap map;
  for (size_t i = 0; i < numbers.size(); i += 3) {
    Range r{numbers[i], numbers[i + 1], numbers[i + 2]};
    if (r.size == 0 || uint64_t{r.container} + r.size > (uint64_t{1} << 32) || uint64_t{r.host} + r.size > (uint64_t{1} << 32))
      return Status::Error(EINVAL, std::string(what) + ": range " + std::to_string(i / 3 + 1) + " is empty or exceeds 2^32");
    for (const Range& o : map.ranges_)
      if (Overlaps(r.container, r.size, o.container, o.size) || Overlaps(r.host, r.size, o.host, o.size))
        return Status::Error(EINVAL, std::string(what) + ": range " + std::to_string(i / 3 + 1) + " overlaps an earlier one");
    map.ranges_.push_back(r);
  }
  return map;
}

uint32_t IdMap::Shown(uint32_t stored) const {
  if (ranges_.empty()) return stored;
  for (const Range& r : ranges_)
    if (stored >= r.container && stored - r.container < r.size) return r.host + (stored - r.container);
  return kOverflowId;
}

uint32_t IdMap::Stored(uint32_t shown) const {
  if (ranges_.empty()) return shown;
  for (const Range& r : ranges_)
    if (shown >= r.host && shown - r.host < r.size) return r.container + (shown - r.host);
  return kOverflowId;
}

}  // namespace layerfs
