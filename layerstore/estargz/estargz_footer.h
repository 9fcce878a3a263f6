// The eStargz footer: the last 51 bytes of the blob, an empty gzip member whose Extra field
// (subfield 'S''G') holds "%016x" of the TOC's offset followed by "STARGZ". Plain gunzip reads
// it as a member with no data; a lazy reader fetches it first to find the TOC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "layerstore/base/status.h"

namespace layerfs {

inline constexpr size_t kEstargzFooterSize = 51;

std::string EstargzFooter(uint64_t toc_offset);
// footer: exactly the blob's last kEstargzFooterSize bytes. EINVAL unless it is one.
Result<uint64_t> ParseEstargzFooter(std::string_view footer);

}  // namespace layerfs
