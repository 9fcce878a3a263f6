#include "layerstore/base/status.h"

#include <cstring>

namespace layerfs {

Status Status::FromErrno(const std::string& what) { return FromErrno(errno, what); }

Status Status::FromErrno(int err, const std::string& what) {
  if (err == 0) err = EIO;
  return Status(err, what + ": " + std::strerror(err));
}

Status Status::WithContext(const std::string& prefix) const {
  if (ok()) return *this;
  return Status(code_, prefix + ": " + message_);
}

}  // namespace layerfs
