// Crash: the mount daemon is SIGKILLed during a storm of writes (copy-ups of lower files and
// appends to new files). Afterwards the stale mount is cleaned, the upper holds no half-copied
// file posing as complete (each upper file is its lower plus whole storm blocks, or a prefix of
// its storm stream), and the next mount of the same upper works and shows the same.
//   UpperConsistentAfterSigkill: the daemon is a forked child running RunMountDaemon.
//   CliUmountCleansStaleMount: the real binary (`layerfs mount -f`, `layerfs umount`).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "fs/mount/mount.h"
#include "layerstore/store/image_store.h"
#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

constexpr int kLowerFiles = 32;
constexpr size_t kBlock = 4096;
constexpr size_t kLowerSize = 16 * kBlock;
constexpr int kStormThreads = 4;

std::string Fill(uint64_t seed, size_t len) {
  std::string s(len, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  for (auto& c : s) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>('a' + x % 26);
  }
  return s;
}
std::string LowerContent(int f) { return Fill(1000 + f, kLowerSize); }
// A storm block names its generation in its first bytes, so any generation can be checked.
std::string StormBlock(int f, size_t block, uint32_t gen) {
  std::string head = "G" + std::to_string(gen) + ":";
  return head + Fill(size_t(f) * 100003 + block * 1009 + gen, kBlock - head.size());
}
std::string NewFileStream(int t, size_t len) { return Fill(50000 + t, len); }

bool IsStormBlock(int f, size_t block, const std::string& data) {
  if (data.size() != kBlock || data[0] != 'G') return false;
  uint32_t gen = std::strtoul(data.c_str() + 1, nullptr, 10);
  return data == StormBlock(f, block, gen);
}

// Every lower file: its lower bytes with whole storm blocks; new files: a prefix of their stream.
std::vector<std::string> CheckFiles(const fs::path& root, bool upper_only) {
  std::vector<std::string> errors;
  for (int f = 0; f < kLowerFiles; ++f) {
    fs::path p = root / "data" / ("l" + std::to_string(f));
    if (upper_only && !fs::exists(p)) continue;
    std::string got;
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      errors.push_back(p.string() + ": " + strerror(errno));
      continue;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) got.append(buf, n);
    close(fd);
    std::string lower = LowerContent(f);
    if (got.size() != lower.size()) {
      errors.push_back(p.string() + ": size " + std::to_string(got.size()) + ", lower is " + std::to_string(lower.size()));
      continue;
    }
    for (size_t b = 0; b < kLowerSize / kBlock; ++b) {
      std::string block = got.substr(b * kBlock, kBlock);
      if (block != lower.substr(b * kBlock, kBlock) && !IsStormBlock(f, b, block))
        errors.push_back(p.string() + ": block " + std::to_string(b) + " is neither lower nor a whole storm write");
    }
  }
  for (int t = 0; t < kStormThreads; ++t) {
    fs::path p = root / "data" / ("new" + std::to_string(t));
    if (!fs::exists(p)) continue;
    std::string got;
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    char buf[65536];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) got.append(buf, n);
    if (fd >= 0) close(fd);
    if (got != NewFileStream(t, got.size())) errors.push_back(p.string() + ": not a prefix of what was written");
  }
  return errors;
}

LayerSpec CrashLayer() {
  LayerSpec layer;
  SpecEntry dir;
  dir.path = "data";
  dir.type = EntryType::kDirectory;
  dir.mode = 0755;
  layer.push_back(dir);
  for (int f = 0; f < kLowerFiles; ++f) {
    SpecEntry e;
    e.path = "data/l" + std::to_string(f);
    e.content = LowerContent(f);
    layer.push_back(e);
  }
  std::sort(layer.begin(), layer.end(), [](const SpecEntry& a, const SpecEntry& b) { return a.path < b.path; });
  return layer;
}

// Writers until the mount dies (ENOTCONN / EIO) or stop is set.
void Storm(const fs::path& mnt, int t, std::atomic<bool>* stop, std::atomic<uint64_t>* writes) {
  std::mt19937 rng(t + 1);
  int out = open((mnt / "data" / ("new" + std::to_string(t))).c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  size_t appended = 0;
  for (uint32_t gen = 1; !stop->load(); ++gen) {
    int f = t + kStormThreads * (rng() % (kLowerFiles / kStormThreads));
    size_t block = rng() % (kLowerSize / kBlock);
    int fd = open((mnt / "data" / ("l" + std::to_string(f))).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) break;
    std::string data = StormBlock(f, block, gen);
    bool ok = pwrite(fd, data.data(), data.size(), block * kBlock) == static_cast<ssize_t>(data.size());
    close(fd);
    if (out >= 0) {
      std::string chunk = NewFileStream(t, appended + 3000).substr(appended);
      if (write(out, chunk.data(), chunk.size()) > 0) appended += chunk.size();
    }
    if (!ok) break;
    ++*writes;
  }
  if (out >= 0) close(out);
}

bool IsFuseMount(const fs::path& mnt) {
  struct statfs st;
  return statfs(mnt.c_str(), &st) == 0 && st.f_type == 0x65735546;  // FUSE_SUPER_MAGIC
}

// Listed in the mount table (also when its daemon is dead and statfs fails with ENOTCONN).
bool IsListedMount(const fs::path& mnt) {
  FILE* f = fopen("/proc/self/mounts", "r");
  if (!f) return false;
  char line[4096];
  bool found = false;
  std::string needle = " " + mnt.string() + " ";
  while (!found && fgets(line, sizeof(line), f)) found = strstr(line, needle.c_str()) != nullptr;
  fclose(f);
  return found;
}

class Crash : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    store_ = Store::Open(tmp_.path() / "store");
    ASSERT_TRUE(store_.ok());
    auto tar = BuildLayerTar(CrashLayer());
    ASSERT_TRUE(tar.ok());
    auto diff_id = AddLayer(*store_, *tar);
    ASSERT_TRUE(diff_id.ok()) << diff_id.status().message();
    diff_id_ = *diff_id;
    for (const auto& d : {upper(), work(), mnt()}) fs::create_directories(d);
  }
  void TearDown() override {
    if (daemon_ > 0) {
      kill(daemon_, SIGKILL);
      waitpid(daemon_, nullptr, 0);
    }
    ForceUnmount(mnt());
  }
  fs::path upper() const { return tmp_.path() / "upper"; }
  fs::path work() const { return tmp_.path() / "work"; }
  fs::path mnt() const { return tmp_.path() / "mnt"; }

  // Storm, then SIGKILL the daemon in the middle of it.
  void StormAndKill() {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> writes{0};
    std::vector<std::thread> storm;
    storm.reserve(kStormThreads);
    for (int t = 0; t < kStormThreads; ++t) storm.emplace_back(Storm, mnt(), t, &stop, &writes);
    while (writes.load() < 400) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(kill(daemon_, SIGKILL), 0);
    waitpid(daemon_, nullptr, 0);
    daemon_ = 0;
    stop = true;
    for (auto& t : storm) t.join();
    std::printf("crash: daemon killed after %llu storm writes\n", static_cast<unsigned long long>(writes.load()));
  }

  void CheckUpperAndRemount() {
    for (const auto& e : CheckFiles(upper(), /*upper_only=*/true)) ADD_FAILURE() << "upper: " << e;
    auto again = MountLayerfs(store_->root(), {diff_id_}, upper(), work(), mnt());
    ASSERT_TRUE(again.ok()) << "next mount: " << again.status().message();
    for (const auto& e : CheckFiles(mnt(), false)) ADD_FAILURE() << "after remount: " << e;
    std::string errors;
    SnapshotTree(mnt(), &errors);
    EXPECT_EQ(errors, "");
    EXPECT_TRUE((*again)->Unmount().ok());
  }

  TempDir tmp_{"layerfs-crash"};
  Result<Store> store_ = Status::Error(EINVAL, "unset");
  Digest diff_id_;
  pid_t daemon_ = 0;
};

TEST_F(Crash, UpperConsistentAfterSigkill) {
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  daemon_ = fork();
  if (daemon_ == 0) {
    close(ready[0]);
    MountConfig config;
    config.store_root = store_->root();
    config.layers = {diff_id_};
    config.upper_dir = upper();
    config.work_dir = work();
    config.mountpoint = mnt();
    _exit(RunMountDaemon(config, ready[1]).ok() ? 0 : 1);
  }
  close(ready[1]);
  char buf[512] = {};
  ssize_t n = read(ready[0], buf, sizeof(buf) - 1);
  close(ready[0]);
  ASSERT_TRUE(n == 1 && buf[0] == 'R') << "daemon did not start: " << buf;
  StormAndKill();
  EXPECT_TRUE(IsListedMount(mnt())) << "the killed daemon's mount should be left stale";
  EXPECT_EQ(umount2(mnt().c_str(), MNT_DETACH), 0) << strerror(errno);
  CheckUpperAndRemount();
}

int RunBinary(const std::vector<std::string>& args, std::string* output) {
  std::string cmd = LAYERFS_BINARY;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(Crash, CliUmountCleansStaleMount) {
  ImageStore images(*store_);
  ImageStore::ChildSpec spec;
  spec.layer = Descriptor{kOciLayerTarType, diff_id_, 0, nlohmann::json(), nlohmann::json()};
  spec.layer.size = fs::file_size(store_->blob_path(diff_id_));
  spec.diff_id = diff_id_;
  spec.history.created_by = "crash test";
  ASSERT_TRUE(images.CreateChild(nullptr, spec, "crash:test").ok());
  std::string root = store_->root().string();

  daemon_ = fork();
  if (daemon_ == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execl(LAYERFS_BINARY, LAYERFS_BINARY, "--root", root.c_str(), "mount", "-f", "--name", "crashed", "crash:test",
          mnt().c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 500 && !IsFuseMount(mnt()); ++i) {
    if (waitpid(daemon_, nullptr, WNOHANG) == daemon_) {
      daemon_ = 0;
      FAIL() << "`layerfs mount -f` exited before mounting";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(IsFuseMount(mnt())) << "`layerfs mount -f` did not mount within 5 s";
  StormAndKill();
  std::string out;
  EXPECT_EQ(RunBinary({"--root", root, "umount", mnt().string()}, &out), 0) << out;
  EXPECT_FALSE(IsListedMount(mnt())) << "stale mount still there";

  out.clear();
  EXPECT_EQ(RunBinary({"--root", root, "mount", "--name", "crashed", "crash:test", mnt().string()}, &out), 0) << out;
  for (const auto& e : CheckFiles(mnt(), false)) ADD_FAILURE() << "after remount: " << e;
  out.clear();
  EXPECT_EQ(RunBinary({"--root", root, "umount", "crashed"}, &out), 0) << out;
}

}  // namespace
}  // namespace layerfs::fstest
