#include "fs/mount/mount_stats.h"

#include <sys/xattr.h>

#include <cerrno>

#include "fs/engine/request_stats.h"

namespace layerfs {

// One read into a buffer far larger than the text (~800 bytes): asking for the size first
// would race with the requests counted in between.
Result<std::vector<std::pair<std::string, uint64_t>>> ReadRequestStats(const std::filesystem::path& mountpoint) {
  std::string buf(size_t{64} * 1024, '\0');
  ssize_t n = ::getxattr(mountpoint.c_str(), RequestStats::kXattr, buf.data(), buf.size());
  if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
    return Status::Error(errno, mountpoint.string() + ": no request counts (not a layerfs mount point, or not root)");
  if (n < 0) return Status::FromErrno(mountpoint.string());
  buf.resize(static_cast<size_t>(n));
  return RequestStats::Parse(buf);
}

}  // namespace layerfs
