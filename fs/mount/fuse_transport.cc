#include "fs/mount/fuse_transport.h"

#include <dirent.h>
#include <unistd.h>

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

namespace layerfs {

const char* TransportName(Transport t) { return t == Transport::kIoUring ? "io_uring" : "/dev/fuse"; }

bool BuildHasIoUring() {
#if LAYERFS_HAVE_IO_URING
  return true;
#else
  return false;
#endif
}

bool KernelOffersIoUring() {
  std::ifstream in("/sys/module/fuse/parameters/enable_uring");
  char c = 'N';
  return (in >> c) && (c == 'Y' || c == 'y' || c == '1');
}

TransportChoice ChooseTransport(bool wanted) {
  TransportChoice choice;
  const char* env = std::getenv("LAYERFS_IO_URING");
  if (env != nullptr && std::string_view(env) == "off") wanted = false;
  if (env != nullptr && std::string_view(env) == "on") wanted = true;
  if (!wanted) choice.why = "io_uring turned off";
  else if (!BuildHasIoUring())
    choice.why = "this build's libfuse has no io_uring";
  else if (!KernelOffersIoUring())
    choice.why = "the kernel does not offer io_uring (/sys/module/fuse/parameters/enable_uring is not Y)";
  else
    choice.transport = Transport::kIoUring;
  return choice;
}

std::string FuseBuildSummary() {
#if LAYERFS_HAVE_PASSTHROUGH
  const char* passthrough = "yes";
#else
  const char* passthrough = "no";
#endif
  return std::string("libfuse ") + fuse_pkgversion() + ", passthrough: " + passthrough +
         ", io_uring: " + (BuildHasIoUring() ? "yes" : "no") +
         " (kernel: " + (KernelOffersIoUring() ? "on" : "off") + ")";
}

int CountIoUringFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  int count = 0;
  char target[64];
  while (struct dirent* e = ::readdir(d)) {
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof(target));
    if (n > 0 && std::string_view(target, n) == "anon_inode:[io_uring]") ++count;
  }
  ::closedir(d);
  return count;
}

}  // namespace layerfs
