// FuseMount: Mount implemented with a libfuse low-level session served by a worker-thread
// pool on a background thread. Internal to fs/ (mount.cc, daemon.cc).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "fs/engine/layer_fs.h"
#include "fs/mount/fuse_transport.h"
#include "fs/mount/mount.h"

namespace layerfs {

class FuseMount : public Mount {
 public:
  // on_exit runs on the serving thread when the session ends (e.g. someone ran umount).
  static Result<std::unique_ptr<FuseMount>> Create(const MountConfig& config, std::function<void()> on_exit = {});
  ~FuseMount() override;
  Status Unmount() override;
  // Unmounts even if busy (MNT_DETACH / fusermount3 -uz), then joins.
  void UnmountLazy();
  const LayerFs& fs() const { return *fs_; }
  // The transport the mount's requests come by, and why not io_uring where it is not.
  Transport transport() const { return transport_; }
  const std::string& transport_why() const { return transport_why_; }

 private:
  FuseMount() = default;
  Status Serve(const MountConfig& config);
  void Join();

  std::unique_ptr<LayerFs> fs_;
  fuse_session* se_ = nullptr;
  std::string mountpoint_;
  std::thread loop_;
  std::function<void()> on_exit_;
  bool mounted_ = false;
  // Set by the serving thread when the session has ended on its own: the kernel side is gone
  // (someone unmounted us or aborted the connection) and the path may hold another mount.
  std::atomic<bool> session_ended_ = false;
  unsigned threads_ = 0;
  Transport transport_ = Transport::kDevFuse;
  std::string transport_why_;
};

// "DIR: <why>" when a directory cannot become a mount point (missing, not a directory, not
// empty, already a mount point); also checks /dev/fuse.
Status CheckMountpoint(const std::filesystem::path& dir);

// A FUSE mount whose daemon is gone (stat: ENOTCONN) is on top at path.
bool DeadMountAt(const std::filesystem::path& path);

}  // namespace layerfs
