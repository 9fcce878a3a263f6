#include "fs/engine/request_stats.h"

#include <cerrno>
#include <charconv>

namespace layerfs {

const char* RequestStats::Name(Op op) {
  static constexpr const char* kNames[kOpCount] = {
      "LOOKUP", "FORGET", "BATCH_FORGET", "GETATTR", "SETATTR", "READLINK", "MKNOD", "MKDIR",
      "UNLINK", "RMDIR", "SYMLINK", "RENAME", "LINK", "OPEN", "READ", "WRITE",
      "FLUSH", "RELEASE", "FSYNC", "OPENDIR", "READDIR", "READDIRPLUS", "RELEASEDIR", "FSYNCDIR", "STATFS",
      "SETXATTR", "GETXATTR", "LISTXATTR", "REMOVEXATTR", "CREATE", "FALLOCATE", "IOCTL", "LSEEK"};
  return kNames[op];
}

std::string RequestStats::Text() const {
  std::string out;
  for (int op = 0; op < kOpCount; ++op) {
    out += Name(static_cast<Op>(op));
    out += ' ';
    out += std::to_string(Count(static_cast<Op>(op)));
    out += '\n';
  }
  return out;
}

Result<std::vector<std::pair<std::string, uint64_t>>> RequestStats::Parse(std::string_view text) {
  std::vector<std::pair<std::string, uint64_t>> out;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    size_t space = line.find(' ');
    uint64_t count = 0;
    const char* last = line.data() + line.size();
    if (space == 0 || space == std::string_view::npos ||
        std::from_chars(line.data() + space + 1, last, count).ptr != last || space + 1 == line.size())
      return Status::Error(EINVAL, "request counts: cannot read line \"" + std::string(line) + "\"");
    out.emplace_back(std::string(line.substr(0, space)), count);
  }
  return out;
}

}  // namespace layerfs
