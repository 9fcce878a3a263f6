// Failpoint: lets crash tests kill a process at an exact point. With LAYERFS_FAILPOINT=<name> in
// its environment, a process that reaches Failpoint("<name>") sends itself SIGKILL, which is
// what a crash or the OOM killer does; unset, a failpoint costs one getenv.
#pragma once

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace layerfs {

inline void Failpoint(const char* name) {
  const char* armed = std::getenv("LAYERFS_FAILPOINT");
  if (armed != nullptr && std::strcmp(armed, name) == 0) ::raise(SIGKILL);
}

}  // namespace layerfs
