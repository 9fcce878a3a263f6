// The data path of real mounts (fs/engine/passthrough.h, docs/passthrough.md): FUSE passthrough where
// this build (libfuse >= 3.17), the kernel and our capabilities allow it, the daemon's read
// path otherwise. Counts the READ requests that reach the daemon to tell the two apart.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "fs/mount/fuse_mount.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace stdfs = std::filesystem;
using fstest::DirEntry;
using fstest::FileEntry;
using fstest::LayerSpec;
using fstest::ReadAll;

std::string Pattern(size_t size, char seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + (i * 7 + i / 4096) % 61);
  return s;
}

std::string PreadAll(int fd, size_t max) {
  std::string out(max, '\0');
  ssize_t n = ::pread(fd, out.data(), max, 0);
  out.resize(n > 0 ? n : 0);
  return out;
}

// An fd on the mount, closed even when an assertion returns early: a leaked one would keep the
// FUSE connection alive past the daemon and hang the test binary at exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

#if LAYERFS_HAVE_PASSTHROUGH
bool KernelHasPassthrough() {
  FILE* p = ::popen("zcat /proc/config.gz 2>/dev/null | grep -c '^CONFIG_FUSE_PASSTHROUGH=y'", "r");
  if (p == nullptr) return false;
  char buf[16] = {};
  bool known = std::fgets(buf, sizeof(buf), p) != nullptr;
  ::pclose(p);
  if (known) return std::atoi(buf) > 0;
  struct utsname u;
  int major = 0, minor = 0;
  return ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 && (major > 6 || (major == 6 && minor >= 9));
}

bool InitialUserNamespace() {
  std::ifstream map("/proc/self/uid_map");
  unsigned long long a = 1, b = 1, c = 0;
  map >> a >> b >> c;
  return a == 0 && b == 0 && c == 4294967295ull;
}

#endif

// What this build on this machine must do: passthrough exactly when everything allows it.
bool PassthroughExpected() {
#if LAYERFS_HAVE_PASSTHROUGH
  return ::geteuid() == 0 && InitialUserNamespace() && KernelHasPassthrough();
#else
  return false;
#endif
}

// Pages of `path` in the page cache.
size_t ResidentPages(const stdfs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t size = stdfs::file_size(path);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  size_t page = ::sysconf(_SC_PAGESIZE), pages = (size + page - 1) / page, resident = 0;
  std::vector<unsigned char> vec(pages);
  if (::mincore(map, size, vec.data()) == 0)
    for (unsigned char v : vec) resident += v & 1;
  ::munmap(map, size);
  return resident;
}

void DropFromCache(const stdfs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
}

class PassthroughTest : public ::testing::Test {
 protected:
  PassthroughTest() : tmp_("layerfs-pt") {}
  ~PassthroughTest() override {
    mount_.reset();
    if (overlay_mounted_) ::umount2(overlay_.c_str(), MNT_DETACH);
    ::unsetenv("LAYERFS_PASSTHROUGH");
  }

  void SetUpLayers(const stdfs::path& store) {
    store_ = store;
    lower_big_ = Pattern(3 << 20, 'a');
    std::vector<LayerSpec> layers = {{DirEntry("data"), FileEntry("data/big.bin", lower_big_), FileEntry("data/small", "lower-data"),
                                      FileEntry("data/other", "other")}};
    for (auto& spec : layers) {
      auto tar = fstest::BuildLayerTar(spec);
      ASSERT_TRUE(tar.ok()) << tar.status().message();
      auto st = Store::Open(store_);
      ASSERT_TRUE(st.ok()) << st.status().message();
      auto d = fstest::AddLayer(*st, *tar);
      ASSERT_TRUE(d.ok()) << d.status().message();
      layers_.push_back(*d);
    }
  }
  void SetUpLayers() { SetUpLayers(tmp_.path() / "store"); }

  stdfs::path LayerFile(const std::string& rel) const {
    auto st = Store::Open(store_);
    return st->layer_tree(layers_[0]) / rel;
  }

  void Mount() {
    auto m = FuseMount::Create(fstest::ContainerMountConfig(store_, layers_, tmp_.path()));
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(m).value();
  }

  void Unmount() {
    ASSERT_TRUE(mount_->Unmount().ok());
    mount_.reset();
  }

  const Passthrough& pt() const { return mount_->fs().passthrough(); }
  stdfs::path mnt() const { return tmp_.path() / "mnt"; }

  fstest::TempDir tmp_;
  stdfs::path store_;
  std::vector<Digest> layers_;
  std::string lower_big_;
  std::unique_ptr<FuseMount> mount_;
  stdfs::path overlay_;
  bool overlay_mounted_ = false;
};

// Passthrough: no READ reaches the daemon and the data sits in the layer file's page cache
// (shared by every container of the image). Fallback: the daemon serves it, correctly.
TEST_F(PassthroughTest, LowerFileReadsAreRightAndPassThroughWherePossible) {
  SetUpLayers();
  DropFromCache(LayerFile("data/big.bin"));
  Mount();
  EXPECT_EQ(pt().enabled(), PassthroughExpected());
  EXPECT_TRUE(ReadAll(mnt() / "data/big.bin") == lower_big_);
  EXPECT_EQ(ReadAll(mnt() / "data/small"), "lower-data");
  if (PassthroughExpected()) {
    EXPECT_EQ(pt().daemon_reads(), 0u);
    EXPECT_EQ(pt().backing_opens(), 2u);
    EXPECT_EQ(ResidentPages(LayerFile("data/big.bin")), (lower_big_.size() + 4095) / 4096);
  } else {
    EXPECT_GT(pt().daemon_reads(), 0u);
  }
}

// Random small reads (the thread-buffer path) and large ones (spliced) through the daemon.
TEST_F(PassthroughTest, FallbackPathServesSmallAndLargeReads) {
  ::setenv("LAYERFS_PASSTHROUGH", "off", 1);
  SetUpLayers();
  Mount();
  EXPECT_FALSE(pt().enabled());
  Fd fd(::open((mnt() / "data/big.bin").c_str(), O_RDONLY));
  ASSERT_GE(fd.get(), 0);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM), 0);  // no readahead: 4 KiB requests
  static char buf[1 << 20];
  for (size_t off : {size_t{0}, size_t{4096} * 17, lower_big_.size() - 4096, size_t{1 << 20}}) {
    for (size_t len : {size_t{4096}, size_t{1 << 20}}) {
      ssize_t n = ::pread(fd.get(), buf, len, static_cast<off_t>(off));
      size_t want = std::min(len, lower_big_.size() - off);
      ASSERT_EQ(n, static_cast<ssize_t>(want)) << off << " " << len << ": " << std::strerror(errno);
      EXPECT_TRUE(std::string(buf, want) == lower_big_.substr(off, want)) << off << " " << len;
    }
  }
  fd.Close();
  EXPECT_GT(pt().daemon_reads(), 0u);
  EXPECT_EQ(pt().backing_opens(), 0u);
}

// An fd opened before another process copies the file up. Kernel overlayfs (>= 4.19) shows the
// upper data to it; so does layerfs's fallback path. With passthrough the fd stays bound to
// the layer file and keeps its content (documented deviation); every open after the copy-up
// (the writer's included) sees the upper data, passed through too, with the same st_ino.
TEST_F(PassthroughTest, FdOpenedBeforeCopyUp) {
  SetUpLayers();
  Mount();
  Fd old(::open((mnt() / "data/small").c_str(), O_RDONLY));
  int old_fd = old.get();
  ASSERT_GE(old_fd, 0);
  EXPECT_EQ(PreadAll(old_fd, 64), "lower-data");
  pid_t child = ::fork();
  if (child == 0) {
    int w = ::open((mnt() / "data/small").c_str(), O_WRONLY | O_TRUNC);
    bool ok = w >= 0 && ::write(w, "UPPER-DATA-longer", 17) == 17 && ::close(w) == 0;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(ReadAll(tmp_.path() / "upper/data/small"), "UPPER-DATA-longer");
  EXPECT_EQ(ReadAll(mnt() / "data/small"), "UPPER-DATA-longer");
  struct stat old_st, new_st;
  ASSERT_EQ(::fstat(old_fd, &old_st), 0);
  ASSERT_EQ(::stat((mnt() / "data/small").c_str(), &new_st), 0);
  EXPECT_EQ(old_st.st_ino, new_st.st_ino);
  if (pt().enabled()) {
    EXPECT_EQ(PreadAll(old_fd, 64), "lower-data") << "passthrough: the fd keeps the layer file";
    EXPECT_EQ(pt().daemon_reads(), 0u);
  } else {
    EXPECT_EQ(PreadAll(old_fd, 64), "UPPER-DATA-longer") << "as kernel overlayfs shows it";
  }
  old.Close();
  uint64_t reads = pt().daemon_reads();
  EXPECT_EQ(ReadAll(mnt() / "data/small"), "UPPER-DATA-longer");
  if (pt().enabled()) {
    EXPECT_EQ(pt().daemon_reads(), reads) << "upper file passed through once the old fd closed";
  }
}

// Upper files are passthrough too: appends, mmap MAP_SHARED, truncation and sizes stay right
// across fds, and survive a remount.
TEST_F(PassthroughTest, UpperFileWritesAppendsMmapAndSizes) {
  SetUpLayers();
  Mount();
  stdfs::path f = mnt() / "data/new";
  Fd fa(::open(f.c_str(), O_CREAT | O_RDWR, 0644));
  int a = fa.get();
  ASSERT_GE(a, 0);
  ASSERT_EQ(::write(a, "hello ", 6), 6);
  Fd fb(::open(f.c_str(), O_WRONLY | O_APPEND));
  int b = fb.get();
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(b, "world", 5), 5);
  struct stat st;
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 11);
  ASSERT_EQ(::ftruncate(a, 8192), 0);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  std::memcpy(static_cast<char*>(p) + 4096, "mapped", 6);
  ASSERT_EQ(::msync(p, 8192, MS_SYNC), 0);
  ::munmap(p, 8192);
  ASSERT_EQ(::write(b, "!", 1), 1);  // O_APPEND: after the truncation
  fa.Close();
  fb.Close();
  std::string want = "hello world" + std::string(4096 - 11, '\0') + "mapped" + std::string(4096 - 6, '\0') + "!";
  EXPECT_EQ(ReadAll(f), want);
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8193);
  // A lower file copied up by an open for write, then written through that same fd.
  Fd c(::open((mnt() / "data/other").c_str(), O_RDWR));
  ASSERT_GE(c.get(), 0);
  ASSERT_EQ(::pwrite(c.get(), "O", 1, 0), 1);
  EXPECT_EQ(PreadAll(c.get(), 64), "Other");
  c.Close();
  if (pt().enabled()) {
    EXPECT_EQ(pt().daemon_reads(), 0u);
  }
  Unmount();
  Mount();
  EXPECT_EQ(ReadAll(f), want);
  EXPECT_EQ(ReadAll(mnt() / "data/other"), "Other");
}

// The stacking choice: kernel overlayfs accepts a layerfs mount as its lower layer while
// layerfs passes reads through to the layer files.
TEST_F(PassthroughTest, KernelOverlayfsStacksOnTop) {
  if (::geteuid() != 0) GTEST_SKIP() << "kernel overlayfs mounts need root";
  SetUpLayers();
  Mount();
  overlay_ = tmp_.path() / "ovl";
  for (const char* d : {"ovl", "ovl-upper", "ovl-work"}) stdfs::create_directories(tmp_.path() / d);
  std::string opts = "lowerdir=" + mnt().string() + ",upperdir=" + (tmp_.path() / "ovl-upper").string() +
                     ",workdir=" + (tmp_.path() / "ovl-work").string();
  ASSERT_EQ(::mount("overlay", overlay_.c_str(), "overlay", 0, opts.c_str()), 0) << std::strerror(errno);
  overlay_mounted_ = true;
  EXPECT_TRUE(ReadAll(overlay_ / "data/big.bin") == lower_big_);
  EXPECT_EQ(ReadAll(overlay_ / "data/small"), "lower-data");
  if (pt().enabled()) {
    EXPECT_EQ(pt().daemon_reads(), 0u);
  }
  Status unmounted = fstest::UnmountWhenIdle(overlay_);
  ASSERT_TRUE(unmounted.ok()) << unmounted.message();
  overlay_mounted_ = false;
}

// A store on a stacked filesystem (here kernel overlayfs) cannot hold backing files at depth
// 0: the first registration fails, the mount says so once and serves reads itself.
TEST_F(PassthroughTest, RegistrationFailureFallsBackOnce) {
  if (!PassthroughExpected()) GTEST_SKIP() << "passthrough is not available here";
  overlay_ = tmp_.path() / "stacked";
  for (const char* d : {"stacked", "stacked-lower", "stacked-upper", "stacked-work"})
    stdfs::create_directories(tmp_.path() / d);
  std::string opts = "lowerdir=" + (tmp_.path() / "stacked-lower").string() + ",upperdir=" +
                     (tmp_.path() / "stacked-upper").string() + ",workdir=" + (tmp_.path() / "stacked-work").string();
  ASSERT_EQ(::mount("overlay", overlay_.c_str(), "overlay", 0, opts.c_str()), 0) << std::strerror(errno);
  overlay_mounted_ = true;
  SetUpLayers(overlay_ / "store");
  Mount();
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(ReadAll(mnt() / "data/big.bin") == lower_big_);
  EXPECT_EQ(ReadAll(mnt() / "data/small"), "lower-data");
  EXPECT_EQ(ReadAll(mnt() / "data/other"), "other");
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(pt().enabled());
  EXPECT_GT(pt().daemon_reads(), 0u);
  size_t first = log.find("passthrough off for this mount");
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("passthrough off for this mount", first + 1), std::string::npos) << log;
  Unmount();
  Status unmounted = fstest::UnmountWhenIdle(overlay_);
  ASSERT_TRUE(unmounted.ok()) << unmounted.message();
  overlay_mounted_ = false;
}

}  // namespace
}  // namespace layerfs
