// TreeSnapshot: everything a user can observe of a directory tree (names, types, modes, owners,
// sizes, content hashes, link targets, user.* xattrs, nlink, mtime, d_type, inode identity),
// and a comparator that names every difference. Header-only so tests/tools can use it too.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "layerstore/base/digest.h"

namespace layerfs::fstest {

struct NodeInfo {
  mode_t mode = 0;  // incl. S_IFMT
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
  nlink_t nlink = 0;
  ino_t ino = 0;
  int64_t mtime = 0;
  unsigned char d_type = DT_UNKNOWN;          // as readdir reported it
  std::string content_sha;                    // regular files
  std::string link_target;                    // symlinks
  std::map<std::string, std::string> xattrs;  // user.* only
};

using Tree = std::map<std::string, NodeInfo>;  // relative path ("" = root) -> info

struct CompareOptions {
  // overlayfs reports st_nlink 1 for a merged directory (ovl_getattr); where `expected` says 1
  // for a directory, any value is accepted.
  bool merged_dir_nlink_one = false;
  // Only mtimes older than this are compared: they were set deterministically (lower layers,
  // utimensat ops); newer ones depend on when each side ran.
  int64_t mtime_before = 1500000000;
  // Lower hard links hidden by a whiteout or opaque dir: overlayfs reports the lower inode's
  // st_nlink, which counts them; layerfs counts the members still visible. Where `actual` says
  // exactly its visible members and `expected` more, the difference is accepted.
  bool nlink_counts_visible_links = false;
  bool compare_ino_identity = true;
  bool compare_raw_ino = false;  // same path, same st_ino (remount stability)
};

namespace tree_detail {

inline std::map<std::string, std::string> UserXattrs(const std::string& path, std::string* error) {
  std::map<std::string, std::string> out;
  char names[8192];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  if (n < 0) {
    if (errno != ENOTSUP) *error += "llistxattr " + path + ": " + strerror(errno) + "\n";
    return out;
  }
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
    std::string name(names + i);
    if (name.rfind("user.", 0) != 0) continue;
    char value[65536];
    ssize_t v = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    if (v < 0) {
      *error += "lgetxattr " + path + " " + name + ": " + strerror(errno) + "\n";
      continue;
    }
    out[name] = std::string(value, v);
  }
  return out;
}

inline std::string HashFile(const std::string& path, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *error += "open " + path + ": " + strerror(errno) + "\n";
    return "";
  }
  Sha256 sha;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) sha.Update(buf, n);
  if (n < 0) *error += "read " + path + ": " + strerror(errno) + "\n";
  close(fd);
  return sha.Finish().hex();
}

inline void Walk(const std::string& root, const std::string& rel, unsigned char d_type, Tree* tree,
                 std::string* error) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    *error += "lstat " + path + ": " + strerror(errno) + "\n";
    return;
  }
  NodeInfo& node = (*tree)[rel];
  node.mode = st.st_mode;
  node.uid = st.st_uid;
  node.gid = st.st_gid;
  node.size = S_ISDIR(st.st_mode) ? 0 : st.st_size;
  node.nlink = st.st_nlink;
  node.ino = st.st_ino;
  node.mtime = st.st_mtim.tv_sec;
  node.d_type = d_type;
  node.xattrs = UserXattrs(path, error);
  if (S_ISREG(st.st_mode)) node.content_sha = HashFile(path, error);
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(path.c_str(), target, sizeof(target));
    if (n >= 0) node.link_target.assign(target, n);
    else
      *error += "readlink " + path + ": " + strerror(errno) + "\n";
  }
  if (!S_ISDIR(st.st_mode)) return;
  DIR* dir = opendir(path.c_str());
  if (!dir) {
    *error += "opendir " + path + ": " + strerror(errno) + "\n";
    return;
  }
  std::vector<std::pair<std::string, unsigned char>> children;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") children.emplace_back(name, e->d_type);
  }
  closedir(dir);
  for (const auto& [name, type] : children) Walk(root, rel.empty() ? name : rel + "/" + name, type, tree, error);
}

inline std::string TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
    case S_IFSOCK: return "socket";
  }
  return "?";
}

inline unsigned char DTypeOf(mode_t mode) { return IFTODT(mode); }

// path -> sorted paths sharing its st_ino (non-directories only).
inline std::map<std::string, std::set<std::string>> InoGroups(const Tree& tree) {
  std::map<ino_t, std::set<std::string>> by_ino;
  for (const auto& [path, n] : tree)
    if (!S_ISDIR(n.mode)) by_ino[n.ino].insert(path);
  std::map<std::string, std::set<std::string>> out;
  for (const auto& [ino, paths] : by_ino)
    for (const auto& p : paths) out[p] = paths;
  return out;
}

inline std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& p : s) out += (out.empty() ? "" : ",") + p;
  return out;
}

inline std::string Show(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 32 && c < 127) out += static_cast<char>(c);
    else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace tree_detail

// Walks root without following symlinks; errors (unreadable files ...) are appended to *error.
inline Tree SnapshotTree(const std::filesystem::path& root, std::string* error) {
  Tree tree;
  tree_detail::Walk(root.string(), "", DT_DIR, &tree, error);
  tree[""].d_type = DT_DIR;
  return tree;
}

// One line per difference, "<path>: <what>: expected X, got Y"; empty when equal.
inline std::vector<std::string> CompareTrees(const Tree& expected, const Tree& actual,
                                             const CompareOptions& opt = {}) {
  using namespace tree_detail;
  std::vector<std::string> diffs;
  auto groups_e = InoGroups(expected), groups_a = InoGroups(actual);
  auto add = [&](const std::string& path, const std::string& what, const std::string& e, const std::string& a) {
    diffs.push_back("/" + path + ": " + what + ": expected " + e + ", got " + a);
  };
  for (const auto& [path, e] : expected) {
    auto it = actual.find(path);
    if (it == actual.end()) {
      diffs.push_back("/" + path + ": missing (expected " + TypeName(e.mode) + ")");
      continue;
    }
    const NodeInfo& a = it->second;
    if ((e.mode & S_IFMT) != (a.mode & S_IFMT)) {
      add(path, "type", TypeName(e.mode), TypeName(a.mode));
      continue;
    }
    if (a.d_type != DT_UNKNOWN && a.d_type != DTypeOf(a.mode))
      add(path, "d_type vs lstat", std::to_string(DTypeOf(a.mode)), std::to_string(a.d_type));
    char buf[64];
    auto oct = [&](unsigned v) { snprintf(buf, sizeof(buf), "%04o", v); return std::string(buf); };
    if ((e.mode & 07777) != (a.mode & 07777)) add(path, "mode", oct(e.mode & 07777), oct(a.mode & 07777));
    if (e.uid != a.uid || e.gid != a.gid)
      add(path, "owner", std::to_string(e.uid) + ":" + std::to_string(e.gid),
          std::to_string(a.uid) + ":" + std::to_string(a.gid));
    if (e.size != a.size) add(path, "size", std::to_string(e.size), std::to_string(a.size));
    if (e.content_sha != a.content_sha) add(path, "content sha256", e.content_sha.substr(0, 12), a.content_sha.substr(0, 12));
    if (e.link_target != a.link_target) add(path, "link target", e.link_target, a.link_target);
    bool skip_nlink = opt.merged_dir_nlink_one && S_ISDIR(e.mode) && e.nlink == 1;
    if (opt.nlink_counts_visible_links && !S_ISDIR(e.mode) && e.nlink > a.nlink && groups_a.count(path) &&
        a.nlink == groups_a[path].size() && groups_e[path] == groups_a[path])
      skip_nlink = true;
    if (e.nlink != a.nlink && !skip_nlink) add(path, "nlink", std::to_string(e.nlink), std::to_string(a.nlink));
    bool old_e = e.mtime < opt.mtime_before, old_a = a.mtime < opt.mtime_before;
    if ((old_e || old_a) && e.mtime != a.mtime) add(path, "mtime", std::to_string(e.mtime), std::to_string(a.mtime));
    if (opt.compare_raw_ino && e.ino != a.ino) add(path, "st_ino", std::to_string(e.ino), std::to_string(a.ino));
    if (e.xattrs != a.xattrs) {
      std::string es, as;
      for (const auto& [k, v] : e.xattrs) es += k + "=" + Show(v) + " ";
      for (const auto& [k, v] : a.xattrs) as += k + "=" + Show(v) + " ";
      add(path, "user xattrs", "{" + es + "}", "{" + as + "}");
    }
  }
  for (const auto& [path, a] : actual)
    if (!expected.count(path)) diffs.push_back("/" + path + ": unexpected " + TypeName(a.mode));
  if (opt.compare_ino_identity) {
    for (const auto& [path, group] : groups_e) {
      auto it = groups_a.find(path);
      if (it != groups_a.end() && it->second != group)
        add(path, "paths sharing st_ino", "{" + Join(group) + "}", "{" + Join(it->second) + "}");
    }
  }
  return diffs;
}

}  // namespace layerfs::fstest
