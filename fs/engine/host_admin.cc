#include "fs/engine/host_admin.h"

#include <cstdlib>
#include <fstream>
#include <string>

namespace layerfs {

namespace {

bool InInitialUserNamespace() {
  std::ifstream map("/proc/self/uid_map");
  unsigned long long inside = 1, outside = 1, count = 0;
  map >> inside >> outside >> count;
  return inside == 0 && outside == 0 && count == 4294967295ull;
}

bool HasEffectiveSysAdmin() {
  constexpr int kCapSysAdmin = 21;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("CapEff:", 0) == 0) return (std::strtoull(line.c_str() + 7, nullptr, 16) >> kCapSysAdmin) & 1;
  return false;
}

}  // namespace

bool HasHostAdmin() {
  static const bool has = HasEffectiveSysAdmin() && InInitialUserNamespace();
  return has;
}

}  // namespace layerfs
