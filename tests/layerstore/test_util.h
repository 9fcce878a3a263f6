// Helpers for the layerstore tests: scratch directories and tar archives built with
// libarchive's writer (never checked-in fixtures).
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// Tests build specs with designated initializers naming only the fields that matter.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace layerfs::testing {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed (with read-only subdirectories made writable) at exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "layerfs-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline void WriteFile(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// n bytes that do not compress, the same for the same seed.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (char& c : s) {
    seed = seed * 1103515245u + 12345u;
    c = static_cast<char>(seed >> 16);
  }
  return s;
}

// Every path below root, relative, without following symlinks.
inline std::set<std::string> ListTree(const fs::path& root) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
    out.insert(it->path().lexically_relative(root).string());  // fs::relative would resolve symlinks
  return out;
}

enum class Compression { kNone,
                         kGzip,
                         kZstd };

struct TarSpec {
  std::string path;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string data;
  std::string link;      // symlink target
  std::string hardlink;  // hard link target
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  long mtime_nsec = 0;
  unsigned dev_major = 0, dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

class TarBuilder {
 public:
  TarSpec& Add(TarSpec spec) {
    specs_.push_back(std::move(spec));
    return specs_.back();
  }
  TarBuilder& File(std::string path, std::string data, mode_t perm = 0644) {
    Add({.path = std::move(path), .type = AE_IFREG, .perm = perm, .data = std::move(data)});
    return *this;
  }
  TarBuilder& Dir(std::string path, mode_t perm = 0755) {
    Add({.path = std::move(path), .type = AE_IFDIR, .perm = perm});
    return *this;
  }
  TarBuilder& Symlink(std::string path, std::string target, mode_t perm = 0777) {
    Add({.path = std::move(path), .type = AE_IFLNK, .perm = perm, .link = std::move(target)});
    return *this;
  }
  TarBuilder& Hardlink(std::string path, std::string target) {
    Add({.path = std::move(path), .type = AE_IFREG, .hardlink = std::move(target)});
    return *this;
  }

  std::string Build(Compression c = Compression::kNone) const {
    std::string out;
    archive* a = archive_write_new();
    archive_write_set_format_pax(a);
    if (c == Compression::kGzip) archive_write_add_filter_gzip(a);
    if (c == Compression::kZstd) archive_write_add_filter_zstd(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open(a, &out, nullptr, Append, nullptr);
    for (const TarSpec& s : specs_) WriteEntry(a, s);
    archive_write_close(a);
    archive_write_free(a);
    return out;
  }

 private:
  static la_ssize_t Append(archive*, void* opaque, const void* buf, size_t n) {
    static_cast<std::string*>(opaque)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  static void WriteEntry(archive* a, const TarSpec& s) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, s.path.c_str());
    archive_entry_set_filetype(e, s.type);
    archive_entry_set_perm(e, s.perm);
    archive_entry_set_uid(e, s.uid);
    archive_entry_set_gid(e, s.gid);
    archive_entry_set_mtime(e, s.mtime, s.mtime_nsec);
    if (!s.link.empty()) archive_entry_set_symlink(e, s.link.c_str());
    if (!s.hardlink.empty()) archive_entry_set_hardlink(e, s.hardlink.c_str());
    if (s.type == AE_IFCHR || s.type == AE_IFBLK) archive_entry_set_rdev(e, makedev(s.dev_major, s.dev_minor));
    for (const auto& [k, v] : s.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    bool has_data = s.type == AE_IFREG && s.hardlink.empty();
    archive_entry_set_size(e, has_data ? static_cast<la_int64_t>(s.data.size()) : 0);
    EXPECT_GE(archive_write_header(a, e), ARCHIVE_WARN) << s.path << ": " << archive_error_string(a);
    if (has_data && !s.data.empty()) archive_write_data(a, s.data.data(), s.data.size());
    archive_entry_free(e);
  }
  std::vector<TarSpec> specs_;
};

}  // namespace layerfs::testing
