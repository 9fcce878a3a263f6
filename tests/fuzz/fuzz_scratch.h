// Scratch files for fuzz targets whose parser reads a file or a directory: one private
// directory per fuzzer process (under $TMPDIR), emptied between inputs so runs stay independent.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "layerstore/base/remove_tree.h"

namespace layerfs::fuzz {

inline const std::filesystem::path& ScratchDir() {
  static const std::filesystem::path dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "layerfs-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// Empties the scratch directory; an input must not see what the previous one left. The store's
// own RemoveTree, since unpacked layers hold read-only dirs; failing to remove is a finding.
inline void ClearScratch() {
  if (!RemoveTree(ScratchDir()).ok()) std::abort();
  std::filesystem::create_directory(ScratchDir());
}

inline std::filesystem::path WriteScratchFile(const std::string& name, std::string_view bytes) {
  std::filesystem::path file = ScratchDir() / name;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return file;
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace layerfs::fuzz
