#include "layerstore/estargz/estargz_footer.h"

#include <charconv>
#include <cstring>

namespace layerfs {

namespace {

// gzip header with FEXTRA, mtime 0, no extra flags, OS "unknown" (RFC 1952 2.3).
constexpr unsigned char kHeader[10] = {0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0x00, 0xff};
// XLEN 26; subfield SI1 'S' SI2 'G', LEN 22.
constexpr unsigned char kExtraHead[6] = {26, 0, 'S', 'G', 22, 0};
// A final stored deflate block of length 0, then CRC32 0 and ISIZE 0 of the empty data.
constexpr unsigned char kTrailer[13] = {0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0};
constexpr std::string_view kMagic = "STARGZ";

}  // namespace

std::string EstargzFooter(uint64_t toc_offset) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(toc_offset));
  std::string out(reinterpret_cast<const char*>(kHeader), sizeof kHeader);
  out.append(reinterpret_cast<const char*>(kExtraHead), sizeof kExtraHead);
  out += hex;
  out += kMagic;
  out.append(reinterpret_cast<const char*>(kTrailer), sizeof kTrailer);
  return out;
}

Result<uint64_t> ParseEstargzFooter(std::string_view footer) {
  const Status bad = Status::Error(EINVAL, "not an eStargz blob (no STARGZ footer)");
  if (footer.size() != kEstargzFooterSize) return bad;
  // The header's mtime, XFL and OS bytes are the writer's choice; the rest is fixed.
  if (std::memcmp(footer.data(), kHeader, 4) != 0 || std::memcmp(footer.data() + 10, kExtraHead, sizeof kExtraHead) != 0 ||
      std::memcmp(footer.data() + 38, kTrailer, sizeof kTrailer) != 0 || footer.substr(32, kMagic.size()) != kMagic)
    return bad;
  std::string_view hex = footer.substr(16, 16);
  uint64_t offset = 0;
  auto r = std::from_chars(hex.data(), hex.data() + hex.size(), offset, 16);
  if (r.ec != std::errc() || r.ptr != hex.data() + hex.size()) return bad;
  return offset;
}

}  // namespace layerfs
