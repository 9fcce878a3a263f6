// FuseTransport: a mount reports the transport its requests come by, and that is the one the
// kernel's enable_uring and the build allow: io_uring exactly where both offer it (libfuse's
// rings exist), /dev/fuse otherwise or where the mount turned it off. Both serve the tree.
#include "fs/mount/fuse_transport.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "fs/mount/fuse_mount.h"
#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSysfs = "/sys/module/fuse/parameters/enable_uring";

// Sets the fuse module's enable_uring for the test and puts the old value back.
class EnableUring {
 public:
  EnableUring() { saved_ = KernelOffersIoUring(); }
  ~EnableUring() { Set(saved_); }
  static void Set(bool on) { std::ofstream(kSysfs) << (on ? "Y" : "N"); }

 private:
  bool saved_ = false;
};

class FuseTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_.path() / "lower/etc");
    std::ofstream(tmp_.path() / "lower/etc/hosts") << "127.0.0.1 localhost\n";
    fs::create_directories(tmp_.path() / "mnt");
  }

  // Mounts the lower read-only, reads a file through it, and returns the reported transport.
  Transport MountAndRead(bool io_uring, std::string* why = nullptr) {
    MountConfig c;
    c.lower_dirs = {tmp_.path() / "lower"};
    c.mountpoint = tmp_.path() / "mnt";
    c.io_uring = io_uring;
    auto m = FuseMount::Create(c);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return Transport::kDevFuse;
    {
      std::ifstream in(tmp_.path() / "mnt/etc/hosts");
      std::stringstream text;
      text << in.rdbuf();
      EXPECT_EQ(text.str(), "127.0.0.1 localhost\n");
    }
    Transport t = (*m)->transport();
    if (why != nullptr) *why = (*m)->transport_why();
    EXPECT_TRUE((*m)->Unmount().ok());
    return t;
  }

  fstest::TempDir tmp_{"layerfs-transport"};
};

TEST_F(FuseTransportTest, ReportedTransportFollowsTheKernelSetting) {
  if (::geteuid() != 0 || !fs::exists(kSysfs)) GTEST_SKIP() << "needs root and a kernel with FUSE over io_uring";
  EnableUring restore;
  EnableUring::Set(false);
  std::string why;
  EXPECT_EQ(MountAndRead(true, &why), Transport::kDevFuse);
  EXPECT_NE(why.find(BuildHasIoUring() ? "enable_uring" : "no io_uring"), std::string::npos) << why;
  EnableUring::Set(true);
  EXPECT_EQ(MountAndRead(true, &why), BuildHasIoUring() ? Transport::kIoUring : Transport::kDevFuse) << why;
}

TEST_F(FuseTransportTest, AMountCanTurnItOff) {
  std::string why;
  EXPECT_EQ(MountAndRead(false, &why), Transport::kDevFuse);
  EXPECT_EQ(why, "io_uring turned off");
}

TEST(ChooseTransport, EnvironmentOverridesTheMount) {
  ::setenv("LAYERFS_IO_URING", "off", 1);
  EXPECT_EQ(ChooseTransport(true).transport, Transport::kDevFuse);
  ::setenv("LAYERFS_IO_URING", "on", 1);
  EXPECT_EQ(ChooseTransport(false).transport,
            BuildHasIoUring() && KernelOffersIoUring() ? Transport::kIoUring : Transport::kDevFuse);
  ::unsetenv("LAYERFS_IO_URING");
}

}  // namespace
}  // namespace layerfs
