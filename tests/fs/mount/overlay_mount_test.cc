// `layerfs overlay` / `layerfs-overlay` end to end through the real binary: every whiteout and
// opaque form of both references read, read-only without upper, daemon exits on umount, bad
// options fail with one line, renamed lower dirs copied up so kernel overlayfs reads the upper,
// owner options.
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/oci/image.h"
#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"
#include "tests/tools/test_images.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

struct CmdResult {
  int rc = -1;
  std::string err;
};

// Runs the binary (argv[0] as given) and collects stderr.
CmdResult RunBinary(const std::string& exe, const std::vector<std::string>& args) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  CmdResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) r.err.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string OverlayExe() { return (fs::path(LAYERFS_BINARY).parent_path() / "layerfs-overlay").string(); }

bool IsMounted(const fs::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.find(" " + dir.string() + " ") != std::string::npos) return true;
  return false;
}

// Pids whose command line names dir (the daemon serving it).
std::vector<int> DaemonsOf(const fs::path& dir) {
  std::vector<int> pids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    int pid = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || end != name.data() + name.size() || pid <= 0) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(dir.string()) != std::string::npos && cmd.find("overlay") != std::string::npos) pids.push_back(pid);
  }
  return pids;
}

bool WaitNoDaemon(const fs::path& dir) {
  for (int i = 0; i < 500; ++i) {
    if (DaemonsOf(dir).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void WriteFile(const fs::path& p, const std::string& content, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
  chmod(p.c_str(), mode);
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void SetX(const fs::path& p, const std::string& name, const std::string& value) {
  ASSERT_EQ(lsetxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << p << " " << name;
}

std::string LowerArg(const std::vector<fs::path>& top_first) {
  std::string s;
  for (const auto& p : top_first) s += (s.empty() ? "" : ":") + p.string();
  return s;
}

class OverlayMount : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "builds lowers with mknod 0/0 and trusted.* xattrs: needs root";
    mnt_ = tmp_.path() / "mnt";
    fs::create_directories(mnt_);
  }
  void TearDown() override {
    if (!mnt_.empty() && IsMounted(mnt_)) {
      umount2(mnt_.c_str(), MNT_DETACH);
      WaitNoDaemon(mnt_);
    }
  }
  fs::path Dir(const std::string& name) {
    fs::path p = tmp_.path() / name;
    fs::create_directories(p);
    return p;
  }
  // Mounts through the binary; asserts it returned 0 and the mount is there.
  void MountOverlay(const std::string& options, const std::string& exe = LAYERFS_BINARY) {
    std::vector<std::string> args;
    if (exe == LAYERFS_BINARY) args.push_back("overlay");
    args.insert(args.end(), {"-o", options, mnt_.string()});
    CmdResult r = RunBinary(exe, args);
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_TRUE(IsMounted(mnt_));
  }
  void Unmount() {
    Status unmounted = UnmountWhenIdle(mnt_);
    ASSERT_TRUE(unmounted.ok()) << unmounted.message();
    EXPECT_TRUE(WaitNoDaemon(mnt_)) << "daemon still running after umount";
  }

  TempDir tmp_{"layerfs-overlay"};
  fs::path mnt_;
};

std::set<std::string> Names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

TEST_F(OverlayMount, ReadsEveryWhiteoutAndOpaqueForm) {
  fs::path bottom = Dir("bottom"), top = Dir("top");
  for (const char* f : {"a/x", "a/y", "a/keep", "b/old", "c", "d/old", "e/old", "f/old", "g/old", "i/old"})
    WriteFile(bottom / f, f);
  for (const char* d : {"a", "b", "d", "e", "f", "g", "i"}) fs::create_directories(top / d);
  ASSERT_EQ(mknod((top / "a/x").c_str(), S_IFCHR, makedev(0, 0)), 0);  // kernel's whiteout
  WriteFile(top / "a/.wh.y", "");                                      // fuse-overlayfs's fallback
  WriteFile(top / ".wh.c", "");
  SetX(top / "b", "trusted.overlay.opaque", "y");
  SetX(top / "d", "user.overlay.opaque", "y");
  SetX(top / "i", "user.fuseoverlayfs.opaque", "y");
  WriteFile(top / "e/.wh..wh..opq", "");
  SetX(top / "f", "trusted.overlay.opaque", "x");  // Linux 6.7 xattr whiteouts inside
  WriteFile(top / "f/old", "");
  SetX(top / "f/old", "trusted.overlay.whiteout", "");
  for (const char* d : {"b", "d", "e", "f", "g", "i"}) WriteFile(top / d / "new", std::string(d) + "/new");
  WriteFile(top / "owned", "o", 0600);
  SetX(top / "owned", "user.containers.override_stat", "1234:5678:0100640");
  WriteFile(top / "priv", "p");
  SetX(top / "priv", "trusted.overlay.origin", "junk");
  SetX(top / "priv", "user.keep", "v");
  ASSERT_EQ(symlink("a/keep", (top / "sym").c_str()), 0);
  ASSERT_EQ(mknod((top / "dev").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_EQ(mkfifo((top / "fifo").c_str(), 0600), 0);
  WriteFile(top / "hl1", "linked");
  ASSERT_EQ(link((top / "hl1").c_str(), (top / "hl2").c_str()), 0);

  MountOverlay("lowerdir=" + LowerArg({top, bottom}));
  EXPECT_EQ(Names(mnt_), (std::set<std::string>{"a", "b", "d", "e", "f", "g", "i", "owned", "priv", "sym", "dev", "fifo", "hl1", "hl2"}));
  EXPECT_EQ(Names(mnt_ / "a"), std::set<std::string>{"keep"});
  for (const char* d : {"b", "d", "e", "f", "i"}) EXPECT_EQ(Names(mnt_ / d), std::set<std::string>{"new"}) << d;
  EXPECT_EQ(Names(mnt_ / "g"), (std::set<std::string>{"new", "old"}));
  EXPECT_EQ(ReadFile(mnt_ / "g/old"), "g/old");
  EXPECT_EQ(ReadFile(mnt_ / "e/new"), "e/new");
  struct stat st;
  ASSERT_EQ(lstat((mnt_ / "owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  char names[256];
  ssize_t n = llistxattr((mnt_ / "priv").c_str(), names, sizeof(names));
  EXPECT_EQ(std::string(names, n > 0 ? n : 0), std::string("user.keep\0", 10));
  EXPECT_EQ(fs::read_symlink(mnt_ / "sym"), fs::path("a/keep"));
  ASSERT_EQ(lstat((mnt_ / "dev").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(lstat((mnt_ / "fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  struct stat l1, l2;
  ASSERT_EQ(lstat((mnt_ / "hl1").c_str(), &l1), 0);
  ASSERT_EQ(lstat((mnt_ / "hl2").c_str(), &l2), 0);
  EXPECT_EQ(l1.st_ino, l2.st_ino);
  EXPECT_EQ(l1.st_nlink, 2u);
  // No upper: read-only.
  EXPECT_NE(open((mnt_ / "newfile").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  Unmount();
}

// The containerd snapshotter's mounts name layers of the layerfs store as lowers, with store=:
// their whiteouts are in the layers' indexes, not in their trees, and a plain directory (a layer
// containerd unpacked itself) may sit above them.
TEST_F(OverlayMount, StoreLayersAreReadFromTheirIndexes) {
  testing::TestLayer base = testing::MakeLayer({{"etc/"}, {"etc/old", "gone"}, {"etc/keep", "kept"}, {"bin", "sh"}});
  testing::TestLayer top = testing::MakeLayer({{"etc/.wh.old", ""}, {"app", "app"}});
  fs::path archive = tmp_.path() / "app.tar";
  testing::WriteOciArchive(archive, {testing::MakeImage({base, top}, {"app:1"})});
  auto store = Store::Open(Dir("store"));
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(LoadImages(*store, archive, {}).ok());
  std::string layers = LowerArg({store->layer_tree(top.diff_id), store->layer_tree(base.diff_id)});
  std::string in_store = ",store=" + store->root().string();

  MountOverlay("lowerdir=" + layers, OverlayExe());  // without store=, the trees alone
  EXPECT_EQ(Names(mnt_ / "etc"), (std::set<std::string>{"keep", "old"}));
  Unmount();

  MountOverlay("lowerdir=" + layers + in_store, OverlayExe());
  EXPECT_EQ(Names(mnt_ / "etc"), std::set<std::string>{"keep"});
  EXPECT_EQ(ReadFile(mnt_ / "app"), "app");
  EXPECT_TRUE(fs::exists(store->chain_dir(ChainId({base.diff_id, top.diff_id})) / "merged"));
  Unmount();

  fs::path unpacked = Dir("unpacked"), upper = Dir("upper"), work = Dir("work");
  WriteFile(unpacked / "etc/new", "new");
  ASSERT_EQ(mknod((unpacked / "bin").c_str(), S_IFCHR, makedev(0, 0)), 0);
  MountOverlay("lowerdir=" + LowerArg({unpacked}) + ":" + layers + in_store + ",upperdir=" + upper.string() +
                   ",workdir=" + work.string(),
               OverlayExe());
  EXPECT_EQ(Names(mnt_), (std::set<std::string>{"app", "etc"}));
  EXPECT_EQ(Names(mnt_ / "etc"), (std::set<std::string>{"keep", "new"}));
  WriteFile(mnt_ / "etc/keep", "changed");
  EXPECT_EQ(ReadFile(upper / "etc/keep"), "changed");
  Unmount();
  EXPECT_EQ(ReadFile(store->layer_tree(base.diff_id) / "etc/keep"), "kept");

  CmdResult bad = RunBinary(OverlayExe(), {"-o", "lowerdir=" + layers + ",store=" + Dir("nostore").string(), mnt_.string()});
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("is not a layerfs store"), std::string::npos) << bad.err;
  EXPECT_FALSE(IsMounted(mnt_));
}

// An upper fuse-overlayfs wrote rootless (its own opaque and origin xattrs, ".wh." files): a
// container moved from fuse-overlayfs to layerfs-overlay keeps its changes.
TEST_F(OverlayMount, ReadsAnUpperFuseOverlayfsWrote) {
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  WriteFile(lower / "dir/old", "old");
  WriteFile(lower / "gone", "gone");
  WriteFile(lower / "kept", "kept");
  fs::create_directories(upper / "dir");
  SetX(upper / "dir", "user.fuseoverlayfs.opaque", "y");
  WriteFile(upper / "dir/new", "new");
  WriteFile(upper / ".wh.gone", "");
  WriteFile(upper / "kept", "changed");
  SetX(upper / "kept", "user.fuseoverlayfs.origin", "handle");
  MountOverlay("lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string());
  EXPECT_EQ(Names(mnt_), (std::set<std::string>{"dir", "kept"}));
  EXPECT_EQ(Names(mnt_ / "dir"), std::set<std::string>{"new"});
  EXPECT_EQ(ReadFile(mnt_ / "kept"), "changed");
  char names[256];
  EXPECT_EQ(llistxattr((mnt_ / "kept").c_str(), names, sizeof(names)), 0);
  Unmount();
}

// Durable (default) and volatile mounts copy up the same bytes; the container's fsync,
// fdatasync and fsync of a directory (upper-backed or lower-only) succeed in both.
TEST_F(OverlayMount, SyncCallsSucceedWithAndWithoutVolatile) {
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  fs::create_directories(lower / "sub");
  fs::create_directories(lower / "untouched");
  WriteFile(lower / "sub/a", "lower-a");
  std::string base = "lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string();
  std::string want = "lower-a";
  for (const char* extra : {"", ",volatile", ",fsync=0"}) {
    SCOPED_TRACE(std::string("options: ") + base + extra);
    MountOverlay(base + extra);
    EXPECT_EQ(ReadFile(mnt_ / "sub/a"), want);
    int fd = open((mnt_ / "sub/a").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << strerror(errno);
    EXPECT_EQ(write(fd, "+", 1), 1);
    want += "+";
    EXPECT_EQ(fsync(fd), 0) << strerror(errno);
    EXPECT_EQ(fdatasync(fd), 0) << strerror(errno);
    close(fd);
    for (const char* dir : {"sub", "untouched", "."}) {  // upper copy, lower only, root
      int dfd = open((mnt_ / dir).c_str(), O_RDONLY | O_DIRECTORY);
      ASSERT_GE(dfd, 0) << dir << ": " << strerror(errno);
      EXPECT_EQ(fsync(dfd), 0) << dir << ": " << strerror(errno);
      EXPECT_EQ(fdatasync(dfd), 0) << dir << ": " << strerror(errno);
      close(dfd);
    }
    Unmount();
  }
  EXPECT_EQ(ReadFile(upper / "sub/a"), "lower-a+++");
  EXPECT_EQ(ReadFile(lower / "sub/a"), "lower-a");
  EXPECT_FALSE(fs::exists(upper / "untouched"));
}

TEST_F(OverlayMount, DaemonExitsOnUmountAndFusermount) {
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  WriteFile(lower / "f", "lower");
  fs::path link = tmp_.path() / "l-link";  // containers/storage passes symlinks to the lowers
  fs::create_directory_symlink(lower, link);
  std::string opts = "lowerdir=" + link.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string();
  MountOverlay(opts, OverlayExe());  // the name containers/storage calls
  WriteFile(mnt_ / "f", "changed");
  EXPECT_EQ(ReadFile(mnt_ / "f"), "changed");
  Unmount();
  EXPECT_EQ(ReadFile(upper / "f"), "changed");
  EXPECT_EQ(ReadFile(lower / "f"), "lower");

  MountOverlay(opts + ",noacl,fsync=0,volatile,nodev,noatime");
  EXPECT_EQ(ReadFile(mnt_ / "f"), "changed");
  CmdResult r = RunBinary("/usr/bin/fusermount3", {"-u", mnt_.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(WaitNoDaemon(mnt_));
  EXPECT_FALSE(IsMounted(mnt_));
}

// containerd unmounts a helper mount whose exit status its shim lost (ECHILD) and mounts again at
// the same target: the first daemon, ending only then, must not detach the mount that replaced it.
TEST_F(OverlayMount, EndingDaemonLeavesTheMountThatReplacedIt) {
  fs::path lower = Dir("lower");
  WriteFile(lower / "f", "lower");
  MountOverlay("lowerdir=" + lower.string());
  std::vector<int> daemons = DaemonsOf(mnt_);
  ASSERT_EQ(daemons.size(), 1u);
  ASSERT_EQ(kill(daemons[0], SIGSTOP), 0);  // it learns of its unmount after the new mount is in
  ASSERT_EQ(umount2(mnt_.c_str(), 0), 0) << strerror(errno);
  ASSERT_EQ(mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  ASSERT_EQ(kill(daemons[0], SIGCONT), 0);
  EXPECT_TRUE(WaitNoDaemon(mnt_));
  struct statfs sf {};
  ASSERT_EQ(statfs(mnt_.c_str(), &sf), 0) << strerror(errno);
  EXPECT_EQ(sf.f_type, TMPFS_MAGIC) << "the ending daemon detached the mount that replaced it";
  umount2(mnt_.c_str(), MNT_DETACH);
}

TEST_F(OverlayMount, ForegroundServesUntilUnmounted) {
  fs::path lower = Dir("lower");
  WriteFile(lower / "f", "lower");
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    execl(LAYERFS_BINARY, LAYERFS_BINARY, "overlay", "-f", "-o", ("lowerdir=" + lower.string()).c_str(),
          mnt_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  bool mounted = false;
  for (int i = 0; i < 500 && !mounted; ++i) {
    mounted = IsMounted(mnt_);
    if (!mounted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(mounted);
  EXPECT_EQ(ReadFile(mnt_ / "f"), "lower");
  int status = -1;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "-f must not return while mounted";
  if (mounted) ASSERT_TRUE(UnmountWhenIdle(mnt_).ok());
  else
    kill(pid, SIGTERM);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(OverlayMount, BadInvocationsFailWithOneLine) {
  fs::path lower = Dir("lower");
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"overlay", "-o", "lowerdir=" + lower.string() + ",frobnicate", mnt_.string()}, "option frobnicate: unknown option"},
      {{"overlay", "-o", "lowerdir=" + (tmp_.path() / "nope").string(), mnt_.string()}, (tmp_.path() / "nope").string()},
      {{"overlay", "-o", "upperdir=/x,workdir=/y", mnt_.string()}, "missing option lowerdir"},
      {{"overlay", "-o", "lowerdir=" + lower.string(), (tmp_.path() / "nomnt").string()}, "nomnt"},
  };
  for (const auto& c : cases) {
    CmdResult r = RunBinary(LAYERFS_BINARY, c.args);
    EXPECT_NE(r.rc, 0) << c.expect;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(IsMounted(mnt_));
  }
  CmdResult help = RunBinary(OverlayExe(), {"--help"});
  EXPECT_EQ(help.rc, 0);
}

TEST_F(OverlayMount, RenamedLowerDirIsCopiedUpAndKernelReadsTheUpper) {
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  WriteFile(lower / "dir/sub/deep", "deep");
  WriteFile(lower / "dir/gone", "gone");
  WriteFile(lower / "dir/l1", "link");
  ASSERT_EQ(link((lower / "dir/l1").c_str(), (lower / "dir/sub/l2").c_str()), 0);
  ASSERT_EQ(symlink("sub/deep", (lower / "dir/sym").c_str()), 0);
  MountOverlay("lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string());
  ASSERT_EQ(unlink((mnt_ / "dir/gone").c_str()), 0);
  ASSERT_EQ(rename((mnt_ / "dir").c_str(), (mnt_ / "moved").c_str()), 0);
  ASSERT_EQ(mkdir((mnt_ / "dir").c_str(), 0755), 0);
  WriteFile(mnt_ / "dir/fresh", "fresh");
  std::string errors;
  Tree layerfs_view = SnapshotTree(mnt_, &errors);
  ASSERT_TRUE(errors.empty()) << errors;
  EXPECT_EQ(ReadFile(mnt_ / "moved/sub/deep"), "deep");
  Unmount();

  char v[16];
  EXPECT_LT(lgetxattr((upper / "moved").c_str(), "trusted.overlay.redirect", v, sizeof(v)), 0) << "no redirect written";
  ASSERT_EQ(lgetxattr((upper / "moved").c_str(), "trusted.overlay.opaque", v, sizeof(v)), 1);
  EXPECT_EQ(ReadFile(upper / "moved/sub/deep"), "deep");

  // Kernel overlayfs, told not to follow redirects, shows the same tree from this upper.
  fs::path kwork = Dir("kwork");
  std::string kopts = "lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + kwork.string() +
                      ",redirect_dir=nofollow,index=off,metacopy=off";
  ASSERT_EQ(mount("overlay", mnt_.c_str(), "overlay", 0, kopts.c_str()), 0) << strerror(errno);
  Tree kernel_view = SnapshotTree(mnt_, &errors);
  umount2(mnt_.c_str(), 0);
  ASSERT_TRUE(errors.empty()) << errors;
  CompareOptions opt;
  opt.merged_dir_nlink_one = true;
  auto diffs = CompareTrees(kernel_view, layerfs_view, opt);
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
}

TEST_F(OverlayMount, OwnerMappingSquashAndStaticNlink) {
  // As podman --uidmap 0:100000:65536 asks: the layers keep the image's ids, the mount shows
  // them as host ids (which the container's user namespace maps back).
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  WriteFile(lower / "mine", "m");
  ASSERT_EQ(chown((lower / "mine").c_str(), 5, 5), 0);
  WriteFile(lower / "unmapped", "u");
  ASSERT_EQ(chown((lower / "unmapped").c_str(), 70000, 70000), 0);
  fs::create_directories(lower / "d/sub1");
  fs::create_directories(lower / "d/sub2");
  std::string base = "lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string();
  MountOverlay(base + ",uidmapping=:0:100000:65536,gidmapping=:0:100000:65536");
  struct stat st;
  ASSERT_EQ(lstat((mnt_ / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100005u);
  EXPECT_EQ(st.st_gid, 100005u);
  ASSERT_EQ(lstat((mnt_ / "unmapped").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ASSERT_EQ(lchown((mnt_ / "mine").c_str(), 100000, 100007), 0);
  ASSERT_EQ(lstat((mnt_ / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(st.st_gid, 100007u);
  ASSERT_EQ(lstat((mnt_ / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 4u);
  WriteFile(mnt_ / "created", "c");  // by host root, outside the mapping: stored as overflow
  Unmount();
  ASSERT_EQ(lstat((upper / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 7u);
  ASSERT_EQ(lstat((upper / "created").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);

  MountOverlay(base + ",squash_to_uid=42,squash_to_gid=43,static_nlink");
  ASSERT_EQ(lstat((mnt_ / "unmapped").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 42u);
  EXPECT_EQ(st.st_gid, 43u);
  ASSERT_EQ(lstat((mnt_ / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  Unmount();
}

std::string GetX(const fs::path& p, const std::string& name) {
  char buf[256];
  ssize_t n = lgetxattr(p.c_str(), name.c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

// containers/storage's force_mask: fuse-overlayfs's xattr_permissions=2 keeps every owner and
// mode set in the mount in user.fuseoverlayfs.override_stat; the upper's files stay the
// daemon's with a mode it can use, and an upper fuse-overlayfs wrote (mode without file type
// bits) reads the same.
TEST_F(OverlayMount, ForceMaskKeepsOwnersAndModesInTheOverrideXattr) {
  fs::path lower = Dir("lower"), upper = Dir("upper"), work = Dir("work");
  WriteFile(lower / "f", "f", 0644);
  ASSERT_EQ(chown((lower / "f").c_str(), 5, 5), 0);
  ASSERT_EQ(symlink("f", (lower / "link").c_str()), 0);
  WriteFile(upper / "by-fuse-overlayfs", "g", 0600);
  SetX(upper / "by-fuse-overlayfs", "user.fuseoverlayfs.override_stat", "11:12:640");
  std::string base = "lowerdir=" + lower.string() + ",upperdir=" + upper.string() + ",workdir=" + work.string();
  MountOverlay(base + ",xattr_permissions=2");
  struct stat st;
  ASSERT_EQ(lchown((mnt_ / "f").c_str(), 7, 8), 0);
  ASSERT_EQ(chmod((mnt_ / "f").c_str(), 0604), 0);
  ASSERT_EQ(lstat((mnt_ / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0604u);
  EXPECT_EQ(st.st_uid, 7u) << "chmod must keep the owner chown set";
  EXPECT_EQ(st.st_gid, 8u);
  ASSERT_EQ(mkdir((mnt_ / "d").c_str(), 0750), 0);
  ASSERT_EQ(lchown((mnt_ / "d").c_str(), 9, 9), 0);
  ASSERT_EQ(chmod((mnt_ / "d").c_str(), 0500), 0);
  ASSERT_EQ(lstat((mnt_ / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 0500u);
  EXPECT_EQ(st.st_uid, 9u);
  // A symlink cannot hold a user.* xattr: fuse-overlayfs ignores the refusal, and so does this.
  EXPECT_EQ(lchown((mnt_ / "link").c_str(), 3, 3), 0);
  ASSERT_EQ(lstat((mnt_ / "by-fuse-overlayfs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(st.st_uid, 11u);
  EXPECT_EQ(st.st_gid, 12u);
  Unmount();
  // On disk: the daemon's files, with the forced usable mask; the truth in the xattr.
  ASSERT_EQ(lstat((upper / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0604u | 0600u);
  EXPECT_EQ(GetX(upper / "f", "user.fuseoverlayfs.override_stat"), "7:8:0100604");
  ASSERT_EQ(lstat((upper / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(GetX(upper / "d", "user.fuseoverlayfs.override_stat"), "9:9:040500");
  EXPECT_EQ(GetX(upper / "f", "user.containers.override_stat"), "");

  // xattr_permissions=1: the privileged name only, read and written.
  MountOverlay(base + ",xattr_permissions=1");
  ASSERT_EQ(lstat((mnt_ / "d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 0700u) << "xattr_permissions=1 reads only security.fuseoverlayfs.override_stat, as fuse-overlayfs";
  EXPECT_EQ(st.st_uid, 0u);
  ASSERT_EQ(mkdir((mnt_ / "d1").c_str(), 0711), 0);
  ASSERT_EQ(lchown((mnt_ / "d1").c_str(), 4, 4), 0);
  Unmount();
  EXPECT_EQ(GetX(upper / "d1", "security.fuseoverlayfs.override_stat"), "4:4:040711");
}

}  // namespace
}  // namespace layerfs::fstest
