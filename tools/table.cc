#include "tools/table.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace layerfs::cli {

size_t DisplayWidth(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string Table::Render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 == row.size()) break;
      size_t width = std::max<size_t>(widths[i] + 3, 10);
      line.append(width - DisplayWidth(row[i]), ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string HumanSize(uint64_t bytes, int precision) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1000.0 && unit + 1 < std::size(kUnits)) {
    size /= 1000.0;
    ++unit;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g%s", precision, size, kUnits[unit]);
  return buf;
}

std::string HumanDuration(int64_t seconds) {
  auto plural = [](int64_t n, const char* unit) { return std::to_string(n) + " " + unit; };
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return plural(seconds, "seconds");
  int64_t minutes = seconds / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return plural(minutes, "minutes");
  int64_t hours = std::llround(static_cast<double>(seconds) / 3600.0);
  if (hours == 1) return "About an hour";
  if (hours < 48) return plural(hours, "hours");
  if (hours < int64_t{24} * 7 * 2) return plural(hours / 24, "days");
  if (hours < int64_t{24} * 30 * 2) return plural(hours / 24 / 7, "weeks");
  if (hours < int64_t{24} * 365 * 2) return plural(hours / 24 / 30, "months");
  return plural(seconds / 3600 / 24 / 365, "years");
}

std::optional<std::time_t> ParseRfc3339(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return std::nullopt;
  if (*rest == '.')
    while (*++rest >= '0' && *rest <= '9') {
    }
  std::time_t t = timegm(&tm);
  if (*rest == 'Z' || *rest == 'z') return t;
  // A numeric offset: "+HH:MM" or "-HH:MM", nothing after it.
  std::string_view zone(rest);
  int hh = 0, mm = 0;
  if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':') return std::nullopt;
  if (std::from_chars(zone.data() + 1, zone.data() + 3, hh).ptr != zone.data() + 3 ||
      std::from_chars(zone.data() + 4, zone.data() + 6, mm).ptr != zone.data() + 6)
    return std::nullopt;
  int64_t offset = (int64_t{hh} * 3600 + int64_t{mm} * 60) * (zone[0] == '+' ? 1 : -1);
  return t - offset;
}

std::string CreatedSince(std::string_view rfc3339, std::time_t now) {
  auto t = ParseRfc3339(rfc3339);
  if (!t || *t <= 0) return "N/A";
  return HumanDuration(now - *t) + " ago";
}

std::string GoTimeString(std::string_view rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  if (!t) return "";
  std::tm tm{};
  gmtime_r(&*t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return buf;
}

std::string Ellipsis(std::string_view s, size_t max) {
  if (DisplayWidth(s) <= max) return std::string(s);
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    bool starts_char = (s[i] & 0xC0) != 0x80;
    if (starts_char && ++chars == max) break;
    out += s[i];
  }
  return out + "…";
}

}  // namespace layerfs::cli
