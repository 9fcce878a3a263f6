// HttpHeaders: the response header lines a registry sends that the client reads itself (curl
// hands them over raw): "Name: value" lines, and where a Range reply says it starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace layerfs {

// "Name: value\r\n" -> {"name", "value"} (name lowercased, value trimmed); nullopt for a line
// without ':' (the status line, the blank line ending the head).
std::optional<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line);

// The first byte a 206 reply's "Content-Range: bytes START-END/TOTAL" value says it holds;
// 0 when the value is not of that form (the caller then refuses a resumed download).
uint64_t ContentRangeStart(std::string_view value);

}  // namespace layerfs
