// The engine's lazy-layer hook (fs/engine/lazy_lowers.h) on a real mount: the top layer's tree
// starts as holes, and a LazyLowers that fills ranges from the unpacked layer stands in for the
// registry. Reads see the right bytes and ask only for what they read; a failing fetch gives
// EIO and never zeros; copy-up and SEEK_HOLE fetch the whole file first; the complete bottom
// layer is never asked.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "fs/mount/mount.h"
#include "layerstore/store/layer_store.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

// Layer `lazy_layer` of the mount served from `holes`, a copy of the unpacked tree whose regular
// files are all hole; Ensure copies the asked range from the unpacked tree.
class HoleFiller : public LazyLowers {
 public:
  HoleFiller(uint32_t lazy_layer, LayerIndex index, fs::path full, fs::path holes)
      : layer_(lazy_layer), index_(std::move(index)), full_(std::move(full)), holes_(std::move(holes)) {}

  bool IsLazy(uint32_t layer) const override { return layer == layer_; }
  const LayerIndex& Index(uint32_t) const override { return index_; }
  std::string TreeDir(uint32_t) const override { return holes_.string(); }

  int Ensure(uint32_t layer, const std::string& path, uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    calls_.push_back({layer, path, offset, length});
    if (failing_.count(path) != 0) return EIO;
    std::string data = ReadAll(full_ / path);
    if (offset >= data.size()) return 0;
    std::string part = data.substr(offset, length);
    int fd = ::open((holes_ / path).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = ::pwrite(fd, part.data(), part.size(), static_cast<off_t>(offset));
    ::close(fd);
    return n == static_cast<ssize_t>(part.size()) ? 0 : EIO;
  }

  struct Call {
    uint32_t layer;
    std::string path;
    uint64_t offset, length;
  };
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void Fail(const std::string& path) {
    std::lock_guard lock(mu_);
    failing_.insert(path);
  }

 private:
  uint32_t layer_;
  LayerIndex index_;
  fs::path full_, holes_;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::set<std::string> failing_;
};

// Copies tree `from` to `to` with every regular file truncated to a hole of its size.
void CopyAsHoles(const fs::path& from, const fs::path& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  for (const auto& e : fs::recursive_directory_iterator(to))
    if (e.is_regular_file() && !e.is_symlink()) {
      uintmax_t size = e.file_size();
      fs::resize_file(e.path(), 0);
      fs::resize_file(e.path(), size);
    }
}

std::string Pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + seed) % 251 + 1);
  return s;
}

class LazyLowersTest : public ::testing::Test {
 protected:
  LazyLowersTest() : tmp_("layerfs-lazylowers") {}

  void SetUp() override {
    auto store = Store::Open(tmp_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto bottom = AddLayer(*store, *BuildLayerTar({DirEntry("etc"), FileEntry("etc/base", "complete layer\n")}));
    big_ = Pattern(3 << 20, 7);
    auto top = AddLayer(*store, *BuildLayerTar({DirEntry("data"), FileEntry("data/big", big_),
                                                FileEntry("data/small", "small file\n"),
                                                HardlinkEntry("data/link", "data/small")}));
    ASSERT_TRUE(bottom.ok() && top.ok());
    CopyAsHoles(store->layer_tree(*top), tmp_.path() / "holes");
    auto index = LayerStore(*store).ReadIndex(*top);
    ASSERT_TRUE(index.ok());
    filler_ = std::make_shared<HoleFiller>(1, std::move(*index), store->layer_tree(*top), tmp_.path() / "holes");
    fs::create_directories(tmp_.path() / "c");
    MountConfig c = ContainerMountConfig(tmp_.path() / "store", {*bottom, *top}, tmp_.path() / "c");
    c.lazy = filler_;
    auto m = Mount::Start(c);
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(*m);
    root_ = c.mountpoint;
  }

  void TearDown() override {
    if (mount_) EXPECT_TRUE(mount_->Unmount().ok());
  }

  uint64_t AskedOf(const std::string& path) {
    uint64_t sum = 0;
    for (const auto& c : filler_->calls()) {
      if (c.path == path) sum += c.length;
    }
    return sum;
  }

  TempDir tmp_;
  std::string big_;
  std::shared_ptr<HoleFiller> filler_;
  std::unique_ptr<Mount> mount_;
  fs::path root_;
};

TEST_F(LazyLowersTest, ReadsSeeFetchedBytesAndAskOnlyForWhatTheyRead) {
  int fd = ::open((root_ / "data/big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string part(4096, '\0');
  ASSERT_EQ(::pread(fd, part.data(), part.size(), 1 << 20), 4096);
  ::close(fd);
  EXPECT_EQ(part, big_.substr(1 << 20, 4096));
  EXPECT_LT(AskedOf("data/big"), big_.size() / 2) << "one small read fetched most of the file";
  EXPECT_EQ(ReadAll(root_ / "data/big"), big_);
  EXPECT_EQ(ReadAll(root_ / "data/link"), "small file\n");
  EXPECT_EQ(ReadAll(root_ / "etc/base"), "complete layer\n");
  for (const auto& c : filler_->calls()) EXPECT_EQ(c.layer, 1u) << c.path << ": a complete layer was asked";
}

TEST_F(LazyLowersTest, AFailedFetchIsEioNeverZeros) {
  filler_->Fail("data/small");
  int fd = ::open((root_ / "data/small").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[64];
  errno = 0;
  EXPECT_EQ(::read(fd, buf, sizeof buf), -1);
  EXPECT_EQ(errno, EIO);
  ::close(fd);
  EXPECT_EQ(ReadAll(root_ / "etc/base"), "complete layer\n") << "local data stops serving";
}

TEST_F(LazyLowersTest, CopyUpFetchesTheWholeFileFirst) {
  int fd = ::open((root_ / "data/big").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "+", 1), 1);
  ::close(fd);
  EXPECT_EQ(ReadAll(tmp_.path() / "c/upper/data/big"), big_ + "+");
  EXPECT_EQ(ReadAll(root_ / "data/big"), big_ + "+");
}

TEST_F(LazyLowersTest, SeekHoleSeesNoHoleInAFileTheImageWroteWhole) {
  int fd = ::open((root_ / "data/big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::lseek(fd, 0, SEEK_HOLE), static_cast<off_t>(big_.size()));
  ::close(fd);
  EXPECT_EQ(AskedOf("data/big"), big_.size());
}

}  // namespace
}  // namespace layerfs::fstest
