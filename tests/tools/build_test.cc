// `layerfs build` end to end: real builds on a busybox base image that the test makes itself,
// RUN steps executed in a layerfs mount, the build cache across runs, failure semantics, the
// history a built image shows, and `builder prune`.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "layerstore/store/image_store.h"
#include "layerstore/store/store.h"
#include "tests/tools/shell_command.h"
#include "tests/tools/test_images.h"

extern char** environ;

namespace layerfs {
namespace {

namespace stdfs = std::filesystem;
using testing::RunShellCommand;
using testing::ShellResult;
using testing::TestFile;

std::string ReadAll(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Write(const stdfs::path& p, const std::string& bytes) {
  stdfs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

class BuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "RUN needs root (namespaces, chroot, FUSE)";
    if (!stdfs::exists("/bin/busybox")) GTEST_SKIP() << "busybox-static is not installed";
    char tmpl[] = "/tmp/layerfs-build-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    root_ = dir_ / "store";
    ctx_ = dir_ / "ctx";
    stdfs::create_directories(ctx_);
    LoadBusybox();
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) stdfs::remove_all(dir_, ec);
  }

  // busybox:latest: /bin/busybox with applet links, /etc/passwd and /etc/group with user app.
  void LoadBusybox() {
    std::vector<TestFile> files = {{"bin/", ""}, {"bin/busybox", ReadAll("/bin/busybox"), "", 0755}, {"etc/", ""}, {"etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"}, {"etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"}, {"tmp/", "", "", 01777}};
    for (const char* applet : {"sh", "echo", "cat", "ls", "id", "test", "touch", "mkdir", "rm", "stat", "true", "false"})
      files.push_back({std::string("bin/") + applet, "", "busybox"});
    auto image = testing::MakeImage({testing::MakeLayer(files)}, {"busybox:latest"});
    testing::WriteOciLayout(dir_ / "busybox-oci", {image});
    ShellResult r = Cli("load " + (dir_ / "busybox-oci").string());
    ASSERT_EQ(r.code, 0) << r.out;
  }

  // out: stdout and stderr together, as a user sees them.
  ShellResult Cli(const std::string& args) const {
    return RunShellCommand("LAYERFS_ROOT=" + root_.string() + " " LAYERFS_BINARY " " + args + " 2>&1");
  }

  ShellResult Build(const std::string& tag, const std::string& extra = "") const {
    return Cli("build -t " + tag + " " + extra + " " + ctx_.string());
  }

  static std::vector<int> CachedSteps(const std::string& out) {
    std::vector<int> steps;
    int step = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("Step ", 0) == 0) step = std::stoi(line.substr(5));
      if (line.find("CACHED") != std::string::npos) steps.push_back(step);
    }
    return steps;
  }

  static std::string BuiltId(const std::string& out) {
    std::smatch m;
    return std::regex_search(out, m, std::regex("Successfully built ([0-9a-f]{12})")) ? m[1].str() : "";
  }

  // Every path in the store except tmp/ litter and the lock file.
  std::set<std::string> StoreFiles() const {
    std::set<std::string> out;
    for (auto it = stdfs::recursive_directory_iterator(root_); it != stdfs::recursive_directory_iterator(); ++it) {
      std::string rel = it->path().lexically_relative(root_).string();
      if (rel.rfind("tmp", 0) == 0 || rel == "lock") continue;
      out.insert(rel);
    }
    return out;
  }

  // A file of the built image, read from the layer that provides it (top layer first).
  std::string ImageFile(const std::string& ref, const std::string& path) const {
    auto store = Store::Open(root_);
    auto image = ImageStore(*store).Resolve(ref);
    if (!image.ok()) return "<no image>";
    for (auto it = image->diff_ids.rbegin(); it != image->diff_ids.rend(); ++it) {
      stdfs::path p = store->layer_tree(*it) / path;
      if (stdfs::exists(p)) return ReadAll(p);
    }
    return "<missing>";
  }

  stdfs::path dir_, root_, ctx_;
};

constexpr const char* kDockerfile =
    "FROM busybox\n"
    "ENV GREETING=hello\n"
    "WORKDIR /app\n"
    "COPY first.txt /app/\n"
    "RUN echo \"$GREETING from $(pwd)\" > out.txt && cat first.txt\n"
    "COPY second.txt /app/\n"
    "RUN cat second.txt >> out.txt\n"
    "CMD [\"cat\", \"/app/out.txt\"]\n";

TEST_F(BuildTest, RunCopyAndMetadataMakeTheImage) {
  Write(ctx_ / "Dockerfile", kDockerfile);
  Write(ctx_ / "first.txt", "first-content\n");
  Write(ctx_ / "second.txt", "second-content\n");
  ShellResult r = Build("demo:1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Step 5/8 : RUN echo"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first-content"), std::string::npos) << r.out;  // RUN output streams
  EXPECT_NE(r.out.find("Successfully tagged demo:1"), std::string::npos) << r.out;
  EXPECT_EQ(ImageFile("demo:1", "app/out.txt"), "hello from /app\nsecond-content\n");
}

TEST_F(BuildTest, HistoryReadsLikeDockerImageHistory) {
  Write(ctx_ / "Dockerfile", kDockerfile);
  Write(ctx_ / "first.txt", "a\n");
  Write(ctx_ / "second.txt", "b\n");
  ASSERT_EQ(Build("demo:1").code, 0);
  ShellResult h = Cli("history --no-trunc demo:1");
  ASSERT_EQ(h.code, 0) << h.out;
  EXPECT_NE(h.out.find("CMD [\"cat\" \"/app/out.txt\"]"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("RUN /bin/sh -c cat second.txt >> out.txt # buildkit"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("COPY second.txt /app/ # buildkit"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("WORKDIR /app"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("ENV GREETING=hello"), std::string::npos) << h.out;
  std::istringstream in(h.out);
  for (std::string line; std::getline(in, line);) {
    if (line.find("ENV GREETING") != std::string::npos || line.find("CMD [") != std::string::npos) {
      EXPECT_TRUE(std::regex_search(line, std::regex("\\s0B\\s"))) << line;
    }
  }
}

TEST_F(BuildTest, UnchangedRebuildIsFullyCachedWithTheSameId) {
  Write(ctx_ / "Dockerfile", kDockerfile);
  Write(ctx_ / "first.txt", "a\n");
  Write(ctx_ / "second.txt", "b\n");
  ShellResult first = Build("demo:1");
  ASSERT_EQ(first.code, 0) << first.out;
  ShellResult second = Build("demo:1");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(CachedSteps(second.out), (std::vector<int>{2, 3, 4, 5, 6, 7, 8})) << second.out;
  EXPECT_EQ(BuiltId(first.out), BuiltId(second.out));
  EXPECT_FALSE(BuiltId(first.out).empty());
}

TEST_F(BuildTest, ChangedCopiedFileRerunsThatCopyAndLaterSteps) {
  Write(ctx_ / "Dockerfile", kDockerfile);
  Write(ctx_ / "first.txt", "a\n");
  Write(ctx_ / "second.txt", "b\n");
  ShellResult first = Build("demo:1");
  ASSERT_EQ(first.code, 0) << first.out;
  Write(ctx_ / "second.txt", "changed\n");
  ShellResult second = Build("demo:1");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(CachedSteps(second.out), (std::vector<int>{2, 3, 4, 5})) << second.out;
  EXPECT_NE(BuiltId(first.out), BuiltId(second.out));
  EXPECT_EQ(ImageFile("demo:1", "app/out.txt"), "hello from /app\nchanged\n");
}

TEST_F(BuildTest, FailingRunFailsWithItsExitCodeNoTagStoreUnchanged) {
  Write(ctx_ / "Dockerfile", "FROM busybox\nCOPY f /f\n");
  Write(ctx_ / "f", "x\n");
  ASSERT_EQ(Build("base:1").code, 0);  // the failing build starts from a cached step
  Write(ctx_ / "Dockerfile", "FROM busybox\nCOPY f /f\nRUN echo about-to-fail && exit 3\n");
  auto before = StoreFiles();
  ShellResult r = Build("broken:1");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("about-to-fail"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("returned a non-zero code: 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("line 3"), std::string::npos) << r.out;
  EXPECT_EQ(Cli("images -q broken").out, "");
  EXPECT_EQ(StoreFiles(), before);
}

// Whether dir is a mount point now (tests in parallel mount RUN steps of their own elsewhere).
bool Mounted(const std::string& dir) {
  return !dir.empty() && ReadAll("/proc/self/mountinfo").find(" " + dir + " ") != std::string::npos;
}

// Whether a process runs with exactly this command line (argv joined by NULs).
bool ProcessRuns(const std::string& cmdline) {
  for (const auto& e : stdfs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") == std::string::npos && ReadAll(e.path() / "cmdline") == cmdline)
      return true;
  }
  return false;
}

template <class Condition>
bool WaitFor(Condition condition) {
  for (int i = 0; i < 400 && !condition(); ++i) ::usleep(50000);
  return condition();
}

TEST_F(BuildTest, CtrlCDuringRunKillsTheStepAndLeavesNoMountOrContainer) {
  Write(ctx_ / "Dockerfile", "FROM busybox\nRUN sleep 47\n");
  auto before = StoreFiles();
  std::string root_env = "LAYERFS_ROOT=" + root_.string();
  std::vector<std::string> env = {root_env, "PATH=/usr/bin:/bin"};
  const char* argv[] = {LAYERFS_BINARY, "build", "-q", "-t", "stopped:1", ctx_.c_str(), nullptr};
  char* envp[] = {env[0].data(), env[1].data(), nullptr};
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, LAYERFS_BINARY, nullptr, nullptr, const_cast<char**>(argv), envp), 0);
  const std::string sleeper(
      "sleep\0"
      "47\0",
      9);
  std::string step_mnt;  // where this build mounts its RUN step: its container record says
  bool running = WaitFor([&] {
    auto ps = nlohmann::json::parse(Cli("ps --format json").out, nullptr, false);
    if (ps.is_array() && ps.size() == 1) step_mnt = ps[0].value("Mountpoint", "");
    return Mounted(step_mnt) && ProcessRuns(sleeper);
  });
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(running) << "the RUN step never started";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "status " << status;
  EXPECT_TRUE(WaitFor([&] { return !ProcessRuns(sleeper); })) << "the step's process outlived the build";
  EXPECT_FALSE(Mounted(step_mnt)) << step_mnt;
  EXPECT_EQ(Cli("ps -a -q").out, "");
  EXPECT_EQ(Cli("images -q stopped").out, "");
  auto after = StoreFiles();
  auto merged_index_cache = [](const std::string& p) { return p.rfind("chains", 0) == 0; };
  std::erase_if(after, merged_index_cache);
  std::erase_if(before, merged_index_cache);
  std::vector<std::string> changed;
  std::set_symmetric_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(changed));
  EXPECT_TRUE(changed.empty()) << "store paths added or removed: " << ::testing::PrintToString(changed);
}

TEST_F(BuildTest, RunIsPid1WithProcDevUserAndWorkdir) {
  Write(ctx_ / "Dockerfile",
        "FROM busybox\n"
        "RUN test \"$$\" = 1 && test -d /proc/1 && test -c /dev/null && echo hi > /dev/null && echo ns-ok\n"
        "WORKDIR /work/dir\n"
        "COPY --chown=app:staff f ./\n"
        "USER app\n"
        "RUN echo \"uid=$(id -u) gid=$(id -g) groups=$(id -G) pwd=$(pwd) home=$HOME\" && stat -c '%u:%g' f\n");
  Write(ctx_ / "f", "x\n");
  ShellResult r = Build("ns:1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ns-ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("uid=1000 gid=1000 groups=1000 50 pwd=/work/dir home=/home/app"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1000:50"), std::string::npos) << r.out;
  // The mount points the builder needed (/proc, /dev) are not in the image's layers.
  auto store = Store::Open(root_);
  auto image = ImageStore(*store).Resolve("ns:1");
  ASSERT_TRUE(image.ok());
  for (const auto& d : image->diff_ids) {
    EXPECT_FALSE(stdfs::exists(store->layer_tree(d) / "proc"));
    EXPECT_FALSE(stdfs::exists(store->layer_tree(d) / "dev"));
  }
}

TEST_F(BuildTest, BuildArgsAndDockerignore) {
  Write(ctx_ / "Dockerfile",
        "FROM busybox\nARG WHO=nobody\nCOPY . /ctx/\nRUN echo \"who=$WHO\" && ls /ctx\n");
  Write(ctx_ / ".dockerignore", "*.secret\n");
  Write(ctx_ / "keep.txt", "k\n");
  Write(ctx_ / "key.secret", "s\n");
  ShellResult r = Build("args:1", "--build-arg WHO=me");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("who=me"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("keep.txt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("key.secret"), std::string::npos) << r.out;
  ShellResult h = Cli("history --no-trunc args:1");
  EXPECT_NE(h.out.find("RUN |1 WHO=me /bin/sh -c"), std::string::npos) << h.out;
}

TEST_F(BuildTest, AddUnpacksALocalTar) {
  testing::WriteTar(ctx_ / "files.tar", {{"inner/a.txt", "from-tar\n"}});
  Write(ctx_ / "Dockerfile", "FROM busybox\nADD files.tar /opt/\nRUN cat /opt/inner/a.txt\n");
  ShellResult r = Build("add:1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("from-tar"), std::string::npos) << r.out;
}

TEST_F(BuildTest, BuilderPruneKeepsImageLayers) {
  Write(ctx_ / "Dockerfile", kDockerfile);
  Write(ctx_ / "first.txt", "a\n");
  Write(ctx_ / "second.txt", "b\n");
  ASSERT_EQ(Build("demo:1").code, 0);
  ShellResult p = Cli("builder prune -a -f");
  ASSERT_EQ(p.code, 0) << p.out;
  EXPECT_NE(p.out.find("Deleted build cache objects: 7"), std::string::npos) << p.out;
  EXPECT_EQ(ImageFile("demo:1", "app/out.txt"), "hello from /app\nb\n");
  ShellResult again = Build("demo:1");
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_TRUE(CachedSteps(again.out).empty()) << again.out;
}

}  // namespace
}  // namespace layerfs
