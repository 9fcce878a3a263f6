#include "layerstore/store/lazy_layer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <thread>

namespace layerfs {

namespace {

constexpr const char* kLockName = "lock";

// flock(op | LOCK_NB), tried for about 100 ms (a Held() probe holds a shared lock for a
// moment): 0, or the errno of the last try.
int TryLock(int fd, int op) {
  int err = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (::flock(fd, op | LOCK_NB) == 0) return 0;
    err = errno;
    if (err != EWOULDBLOCK && err != EINTR) return err;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return err;
}

std::string PidIn(int fd) {
  char buf[32];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  pid_t pid = 0;
  if (n <= 0 || std::from_chars(buf, buf + n, pid).ec != std::errc() || pid <= 0) return "";
  return " (pid " + std::to_string(pid) + ")";
}

}  // namespace

Result<LazyLayerLock> LazyLayerLock::Acquire(const std::filesystem::path& dir, const std::string& what) {
  std::filesystem::path file = dir / kLockName;
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno("lock " + file.string());
  if (int err = TryLock(fd.get(), LOCK_EX); err != 0) {
    if (err != EWOULDBLOCK) return Status::FromErrno(err, "lock " + file.string());
    return Status::Error(EBUSY, what + " is being pulled lazily by another process" + PidIn(fd.get()));
  }
  // The directory may have been removed or installed while we waited: the lock is worth
  // something only while its file is still the directory's.
  struct stat held, now;
  if (::fstat(fd.get(), &held) != 0) return Status::FromErrno("lock " + file.string());
  if (::stat(file.c_str(), &now) != 0 || now.st_ino != held.st_ino || now.st_dev != held.st_dev)
    return Status::Error(ESTALE, file.string() + " went away");
  LazyLayerLock lock(std::move(fd));
  lock.RecordPid();
  return lock;
}

bool LazyLayerLock::Held(const std::filesystem::path& dir) {
  UniqueFd fd(::open((dir / kLockName).c_str(), O_RDONLY | O_CLOEXEC));
  return fd.valid() && ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

void LazyLayerLock::RecordPid() {
  pid_t pid = ::getpid();
  if (!fd_.valid() || pid == pid_) return;
  std::string text = std::to_string(pid) + "\n";
  // Best effort: the pid only names the owner in another process's error message.
  if (::ftruncate(fd_.get(), 0) == 0 && ::pwrite(fd_.get(), text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()))
    pid_ = pid;
}

}  // namespace layerfs
