#include "layerstore/base/remove_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "layerstore/base/unique_fd.h"

namespace layerfs {

namespace {

Status RemoveAt(int parent_fd, const char* name, const std::string& what);

std::vector<std::string> ListNames(int dir_fd) {
  std::vector<std::string> names;
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return names;
  DIR* d = ::fdopendir(dup_fd);
  if (d == nullptr) {
    ::close(dup_fd);
    return names;
  }
  ::rewinddir(d);
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

Status RemoveDirAt(int parent_fd, const char* name, const std::string& what) {
  ::fchmodat(parent_fd, name, 0700, 0);  // children of a 0555 dir cannot be unlinked otherwise
  UniqueFd fd(::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("remove " + what);
  RETURN_IF_ERROR(RemoveTreeContents(fd.get(), what));
  if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    return Status::FromErrno("remove " + what);
  return Status::Ok();
}

Status RemoveAt(int parent_fd, const char* name, const std::string& what) {
  struct stat st;
  if (::fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("remove " + what);
  if (S_ISDIR(st.st_mode)) return RemoveDirAt(parent_fd, name, what);
  if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) return Status::FromErrno("remove " + what);
  return Status::Ok();
}

}  // namespace

Status RemoveTreeContents(int dir_fd, const std::string& what) {
  for (const std::string& n : ListNames(dir_fd)) RETURN_IF_ERROR(RemoveAt(dir_fd, n.c_str(), what + "/" + n));
  return Status::Ok();
}

Status RemoveTree(const std::filesystem::path& path) {
  std::filesystem::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  UniqueFd pfd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pfd.valid()) return errno == ENOENT ? Status::Ok() : Status::FromErrno("remove " + path.string());
  return RemoveAt(pfd.get(), path.filename().c_str(), path.string());
}

}  // namespace layerfs
