#include "fs/container/upper_listing.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace layerfs {

Result<UpperListing> ListUpperDir(int dirfd, const UpperFormat& format, const std::string& where) {
  int fd = dup(dirfd);  // fdopendir takes ownership; keep the caller's fd
  DIR* dir = fd < 0 ? nullptr : fdopendir(fd);
  if (!dir) {
    if (fd >= 0) close(fd);
    return Status::FromErrno("read upper dir " + where);
  }
  rewinddir(dir);
  UpperListing out;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name == ".wh..wh..opq") {
      out.opaque = true;
      continue;
    }
    if (UpperFormat::IsWhiteoutFileName(name)) {
      out.whiteouts.insert(name.substr(4));
      continue;
    }
    struct stat st;
    bool whiteout = false;
    if (format.StatChild(dirfd, name, &st, &whiteout) != 0) continue;  // vanished meanwhile
    if (whiteout) out.whiteouts.insert(name);
    else
      out.entries.push_back(name);
  }
  closedir(dir);
  std::sort(out.entries.begin(), out.entries.end());
  out.opaque = out.opaque || format.IsOpaque(dirfd);
  out.redirect = format.Redirect(dirfd);
  return out;
}

}  // namespace layerfs
