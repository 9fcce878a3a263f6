#include "layerstore/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>

#include "layerstore/store/image_store.h"
#include "layerstore/store/store_gc.h"

namespace layerfs {

fs::path DefaultStoreRoot() {
  if (const char* env = std::getenv("LAYERFS_ROOT"); env && *env) return env;
  if (geteuid() == 0) return "/var/lib/layerfs";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return fs::path(xdg) / "layerfs";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : "/tmp") / ".local" / "share" / "layerfs";
}

StoreLock::StoreLock(StoreLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

Result<StoreLock> StoreLock::Acquire(const fs::path& root, Mode mode) {
  fs::path file = root / "lock";
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("store lock " + file.string());
  int op = mode == Mode::kExclusive ? LOCK_EX : LOCK_SH;
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    Status st = Status::FromErrno("store lock " + file.string());
    ::close(fd);
    return st;
  }
  return StoreLock(fd);
}

namespace {

Status CreateLayout(const Store& s) {
  std::error_code ec;
  for (const fs::path& dir : {s.blobs_dir(), s.layers_dir(), s.chains_dir(), s.containers_dir(),
                              s.buildcache_dir(), s.tmp_dir()}) {
    fs::create_directories(dir, ec);
    if (ec) return Status::Error(ec.value(), "cannot create " + dir.string() + ": " + ec.message());
  }
  if (!fs::exists(s.root() / "oci-layout"))
    RETURN_IF_ERROR(WriteFileAtomic(s, s.root() / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  if (!fs::exists(s.index_json_path()))
    RETURN_IF_ERROR(WriteFileAtomic(
        s, s.index_json_path(),
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})"));
  return Status::Ok();
}

// Litter in tmp/ belongs to a writer that died (store_gc.h: its pid is gone); a store written
// before index.json named only OCI manifests still has Docker schema2 records, which skopeo
// cannot look up (image_store.h). Both need the exclusive lock, so they run only when we can
// take it without waiting; a failure leaves the work for the next run (readers handle both).
void SweepTmpAndConvertRecords(const Store& s) {
  fs::path file = s.root() / "lock";
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    (void)RecoverInterruptedWrites(s);
    (void)ImageStore(s).ConvertDockerRecords();
  }
  ::close(fd);
}

}  // namespace

Result<Store> Store::Open(const fs::path& root) {
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec);
  if (ec) return Status::Error(ec.value(), "store root " + root.string() + ": " + ec.message());
  Store s(abs);
  RETURN_IF_ERROR(CreateLayout(s).WithContext("store " + abs.string()));
  SweepTmpAndConvertRecords(s);
  return s;
}

fs::path Store::NewTempPath(const std::string& prefix) const {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  return tmp_dir() / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
                      "-" + std::to_string(rng() & 0xffffff));
}

Status WriteFileAtomic(const Store& store, const fs::path& dest, std::string_view bytes) {
  return WriteFileAtomicVia(store.NewTempPath("file"), dest, bytes);
}

Status WriteFileAtomicVia(const fs::path& tmp, const fs::path& dest, std::string_view bytes, mode_t mode) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::FromErrno("write " + dest.string());
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::FromErrno("write " + dest.string());
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    Status st = Status::FromErrno("write " + dest.string());
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    Status st = Status::FromErrno("write " + dest.string());
    ::unlink(tmp.c_str());
    return st;
  }
  return Status::Ok();
}

}  // namespace layerfs
