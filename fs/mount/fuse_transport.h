// FuseTransport: how the kernel's FUSE requests reach a mount's daemon. Over /dev/fuse each
// request is a read() by a worker thread and a write() of the reply; over io_uring (libfuse
// >= 3.18 built with liburing, Linux >= 6.14 with CONFIG_FUSE_IO_URING and root's
// `echo Y > /sys/module/fuse/parameters/enable_uring`) libfuse keeps one ring per CPU with
// requests and replies in shared buffers, saving a system call and a wake-up per request.
// docs/io-uring.md has the costs and figures.
#pragma once

#include <string>

namespace layerfs {

enum class Transport { kDevFuse,
                       kIoUring };

const char* TransportName(Transport t);  // "/dev/fuse", "io_uring"

// This build's libfuse has FUSE over io_uring (LAYERFS_HAVE_IO_URING).
bool BuildHasIoUring();
// The running kernel offers it now: the fuse module's enable_uring parameter is Y.
bool KernelOffersIoUring();

// What a mount asks libfuse for, and why. io_uring only where the build and the kernel offer
// it and neither the mount (wanted) nor LAYERFS_IO_URING=off in the environment turned it off.
struct TransportChoice {
  Transport transport = Transport::kDevFuse;
  std::string why;  // for the mount log: "kernel does not offer it (enable_uring is N)", ...
};
TransportChoice ChooseTransport(bool wanted);

// For `layerfs --version`: "libfuse 3.18.3, passthrough: yes, io_uring: yes (kernel: off)".
std::string FuseBuildSummary();

// io_uring instances this process holds (fds of anon_inode:[io_uring]). libfuse reports whether
// its rings started only in a log line; the rings themselves are the evidence (FuseMount
// compares the count before and after INIT).
int CountIoUringFds();

}  // namespace layerfs
