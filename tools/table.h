// Docker-style text output: aligned columns (tabwriter with min width 10, padding 3), sizes
// as go-units prints them ("75.5MB", "1.23kB", "0B"), times as "2 hours ago".
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerfs::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Every column but the last padded to max(widest cell + 3, 10) characters (not bytes).
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Decimal units with `precision` significant digits: Docker uses 3 for images/history, 4 for
// system df.
std::string HumanSize(uint64_t bytes, int precision = 4);
// "About an hour", "3 days", ... as Docker's units.HumanDuration.
std::string HumanDuration(int64_t seconds);
// "<duration> ago" for an RFC 3339 time; "N/A" when missing or unparsable.
std::string CreatedSince(std::string_view rfc3339, std::time_t now);
// "2024-01-02 03:04:05 +0000 UTC" (Go's time.Time String in UTC), "" when unparsable.
std::string GoTimeString(std::string_view rfc3339);
std::optional<std::time_t> ParseRfc3339(std::string_view text);
// s cut to max characters, the last replaced by "…", when longer.
std::string Ellipsis(std::string_view s, size_t max);
size_t DisplayWidth(std::string_view s);  // UTF-8 code points

}  // namespace layerfs::cli
