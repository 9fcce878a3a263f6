// A real O_DIRECT user inside a mount: fio with --direct=1 (what databases do: InnoDB, RocksDB),
// 512-byte and 4 KiB blocks, random reads and writes with verification on a new (upper) file,
// and direct reads of an image (lower) file, in both faces (`layerfs mount`, `layerfs overlay`).
// The exact results of each O_DIRECT call against kernel overlayfs are in differential_test.cc
// (the direct_io scenario); this test shows a whole program runs.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fs/mount/mount.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

// Runs fio with `args`; its exit status, its output in *out.
int RunFio(const std::vector<std::string>& args, std::string* out, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    std::vector<char*> argv = {const_cast<char*>("fio")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp("fio", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  *out = ReadAll(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

class DirectIoUser : public ::testing::TestWithParam<bool> {
 protected:
  DirectIoUser() : tmp_("layerfs-dio") {}

  void SetUp() override {
    if (access("/usr/bin/fio", X_OK) != 0) GTEST_SKIP() << "fio not installed (.ci/install-deps)";
    std::string image(2 << 20, '\0');
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<char>(i * 13 % 241);
    LayerSpec layer = {DirEntry("data"), FileEntry("data/image.bin", image)};
    if (overlay_face()) {
      ASSERT_TRUE(WriteOverlayLower(layer, tmp_.path() / "lower").ok());
      for (const char* d : {"upper", "work", "mnt"}) fs::create_directories(tmp_.path() / d);
      auto m = MountLayerfsOverlay({tmp_.path() / "lower"}, tmp_.path() / "upper", tmp_.path() / "work",
                                   tmp_.path() / "mnt");
      ASSERT_TRUE(m.ok()) << m.status().message();
      mount_ = std::move(*m);
    } else {
      auto store = Store::Open(tmp_.path() / "store");
      ASSERT_TRUE(store.ok()) << store.status().message();
      auto tar = BuildLayerTar(layer);
      ASSERT_TRUE(tar.ok());
      auto diff_id = AddLayer(*store, *tar);
      ASSERT_TRUE(diff_id.ok()) << diff_id.status().message();
      fs::create_directories(tmp_.path() / "c");
      MountConfig c = ContainerMountConfig(tmp_.path() / "store", {*diff_id}, tmp_.path() / "c");
      auto m = MountLayerfs(c.store_root, c.layers, c.upper_dir, c.work_dir, c.mountpoint);
      ASSERT_TRUE(m.ok()) << m.status().message();
      mount_ = std::move(*m);
    }
  }

  void TearDown() override {
    if (mount_) EXPECT_TRUE(mount_->Unmount().ok());
  }

  bool overlay_face() const { return GetParam(); }
  const fs::path& root() const { return mount_->root(); }

  // fio --direct=1 with block size bs: random writes then reads of a new file, verified.
  void RandomReadWrite(const std::string& bs) {
    std::string out;
    int rc = RunFio({"--name=dio" + bs, "--filename=" + (root() / ("db-" + bs)).string(), "--size=1m",
                     "--bs=" + bs, "--direct=1", "--ioengine=psync", "--rw=randrw", "--verify=crc32c",
                     "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--randseed=19"},
                    &out, tmp_.path() / "fio.log");
    EXPECT_EQ(rc, 0) << out;  // verify_fatal: a wrong byte read back fails too
  }

  TempDir tmp_;
  std::unique_ptr<TestMount> mount_;
};

TEST_P(DirectIoUser, FioRandomReadWrite512) { RandomReadWrite("512"); }

TEST_P(DirectIoUser, FioRandomReadWrite4k) { RandomReadWrite("4k"); }

// Direct reads of a file that lives only in the image (the lower layer), 512-byte aligned.
TEST_P(DirectIoUser, FioReadsImageFileDirect) {
  std::string out;
  int rc = RunFio({"--name=lower", "--filename=" + (root() / "data/image.bin").string(), "--readonly",
                   "--size=2m", "--bs=512", "--direct=1", "--ioengine=psync", "--rw=randread", "--number_ios=2000"},
                  &out, tmp_.path() / "fio.log");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(ReadAll(root() / "data/image.bin").size(), 2u << 20);
  EXPECT_FALSE(fs::exists(tmp_.path() / "upper/data/image.bin")) << "a read copied the file up";
  EXPECT_FALSE(fs::exists(tmp_.path() / "c/upper/data/image.bin")) << "a read copied the file up";
}

INSTANTIATE_TEST_SUITE_P(Faces, DirectIoUser, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "LayerfsOverlay" : "LayerfsMount"); });

}  // namespace
}  // namespace layerfs::fstest
