#include "fs/index/overlay_index_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace layerfs {

namespace {

std::string Field(long long v) { return std::to_string(v) + ' '; }

// Creates dir (and its parents); the last component only its owner may read.
Status MakeCacheDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (ec) return Status::Error(ec.value(), dir.parent_path().string() + ": " + ec.message());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(dir.string());
  return Status::Ok();
}

}  // namespace

std::filesystem::path OverlayIndexCache::DefaultDir() {
  if (const char* dir = std::getenv("LAYERFS_INDEX_CACHE"); dir != nullptr && *dir != '\0') return dir;
  if (::geteuid() == 0) return "/var/cache/layerfs/overlay-index";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/')
    return std::filesystem::path(xdg) / "layerfs/overlay-index";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr && *home == '/' ? home : "/tmp") / ".cache/layerfs/overlay-index";
}

Result<Digest> OverlayIndexCache::Key(const std::vector<std::filesystem::path>& lowers) {
  // The index format's version is part of the key: a new format never opens an old file.
  std::string id = "layerfs overlay index v" + std::to_string(MergedIndex::kVersion) + '\n';
  for (const auto& lower : lowers) {
    struct stat st;
    if (::stat(lower.c_str(), &st) != 0) return Status::FromErrno("lower dir " + lower.string());
    id += lower.string() + '\0' + Field(static_cast<long long>(st.st_dev)) + Field(static_cast<long long>(st.st_ino)) +
          Field(st.st_ctim.tv_sec) + Field(st.st_ctim.tv_nsec) + Field(st.st_mtim.tv_sec) +
          Field(st.st_mtim.tv_nsec) + '\n';
  }
  return Sha256Of(id);
}

Result<MergedIndex> OverlayIndexCache::LoadOrBuild(const std::vector<std::filesystem::path>& lowers, bool* hit,
                                                   const DirLayer::LowerReader& reader) const {
  ASSIGN_OR_RETURN(Digest key, Key(lowers));
  std::filesystem::path file = FileOf(key);
  auto cached = MergedIndex::Load(file, DirLayer::ChainId(lowers), static_cast<uint32_t>(lowers.size()));
  if (hit != nullptr) *hit = cached.ok();
  if (cached.ok()) return cached;
  ASSIGN_OR_RETURN(MergedIndex built, DirLayer::BuildMerged(lowers, {}, reader));
  // Stored only if no lower root changed during the walk, so a key never names an index of
  // a tree older than the key says. A write that fails costs the next mount a walk, no more.
  auto after = Key(lowers);
  if (after.ok() && *after == key && MakeCacheDir(dir_).ok()) (void)built.WriteBeside(file, 0600);
  return built;
}

}  // namespace layerfs
