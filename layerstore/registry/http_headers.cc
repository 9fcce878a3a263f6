#include "layerstore/registry/http_headers.h"

#include <cctype>
#include <charconv>

namespace layerfs {

std::optional<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
  return std::make_pair(std::move(name), std::string(value));
}

uint64_t ContentRangeStart(std::string_view value) {
  constexpr std::string_view kUnit = "bytes ";
  uint64_t start = 0;
  if (value.starts_with(kUnit)) std::from_chars(value.data() + kUnit.size(), value.data() + value.size(), start);
  return start;
}

}  // namespace layerfs
