// BuildLazyTree: a lazily pulled layer's tree and index from its eStargz TOC, before any file
// data has arrived. The entries go through the same TreeWriter as an eager unpack, in tar
// order, so the index is what unpacking the blob would record (whiteouts, opaque dirs, hard
// links, symlinked parents, devices, xattrs); regular files are holes of their size. The
// TOC's own tar entry (stargz.index.json, which a plain unpack also writes) comes from the TOC
// member itself, data and header.
#pragma once

#include <filesystem>
#include <string_view>

#include "layerstore/base/status.h"
#include "layerstore/estargz/estargz_toc.h"
#include "layerstore/layer/layer_index.h"

namespace layerfs {

// tree_dir: an empty directory. toc_member: the blob from the TOC's offset to the footer,
// already checked by ReadEstargzToc.
Result<LayerIndex> BuildLazyTree(const EstargzToc& toc, std::string_view toc_member,
                                 const std::filesystem::path& tree_dir);

}  // namespace layerfs
