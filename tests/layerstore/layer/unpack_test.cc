// UnpackLayer on archives built here with libarchive's writer: every entry type, whiteouts,
// compression formats, and hostile archives that must never write outside the tree.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "layerstore/layer/layer_unpack.h"
#include "layerstore/store/layer_store.h"
#include "tests/layerstore/test_util.h"

namespace layerfs {
namespace {

using testing::Compression;
using testing::TarBuilder;

bool IsRoot() { return ::geteuid() == 0; }

// The unpack runs threads; ThreadSanitizer cannot start threads in the fork of a process that
// has threads already (TBB's workers), so the tests that unpack in a forked child skip there.
#if defined(__SANITIZE_THREAD__)
constexpr bool kForkedUnpackWorks = false;
#else
constexpr bool kForkedUnpackWorks = true;
#endif

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

// base/ holds the blob and sentinel/tree; after any unpack, base/ must hold nothing else.
class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(tree()); }
  fs::path base() const { return dir_.path(); }
  fs::path tree() const { return dir_.path() / "sentinel" / "tree"; }

  Result<Digest> Unpack(const std::string& blob_bytes) {
    testing::WriteFile(base() / "blob", blob_bytes);
    return UnpackLayer(base() / "blob", tree(), &index_);
  }
  // Unpacking must fail, name `entry` in its error, and leave an empty tree and index.
  void ExpectRefused(const std::string& blob_bytes, const std::string& entry) {
    auto r = Unpack(blob_bytes);
    ASSERT_FALSE(r.ok()) << "accepted an archive with " << entry;
    EXPECT_NE(r.status().message().find("\"" + entry + "\""), std::string::npos) << r.status().message();
    EXPECT_TRUE(fs::is_empty(tree()));
    EXPECT_TRUE(index_.entries().empty());
    ExpectNothingOutsideTree();
  }
  void ExpectNothingOutsideTree() {
    std::set<std::string> outside;
    for (const std::string& p : testing::ListTree(base()))
      if (!allowed_.count(p) && p.rfind("sentinel/tree/", 0) != 0) outside.insert(p);
    EXPECT_TRUE(outside.empty()) << "written outside the tree: " << *outside.begin();
  }
  const LayerEntry* Find(const std::string& path) const {
    for (const LayerEntry& e : index_.entries())
      if (e.path == path) return &e;
    return nullptr;
  }
  std::vector<std::string> Paths() const {
    std::vector<std::string> out;
    for (const LayerEntry& e : index_.entries()) out.push_back(e.path);
    return out;
  }

  testing::TempDir dir_;
  LayerIndex index_;
  std::set<std::string> allowed_{"blob", "sentinel", "sentinel/tree"};
};

TarBuilder EveryEntryType() {
  TarBuilder b;
  b.Dir("./");
  b.Add({.path = "bin", .type = AE_IFDIR, .perm = 0755, .mtime = 1600000000, .mtime_nsec = 987654321});
  b.Add({.path = "bin/busybox", .perm = 04755, .data = Pattern(70000, 1), .uid = 0, .gid = 0, .mtime = 1650000000, .mtime_nsec = 123456789, .xattrs = {{"security.capability", std::string("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20)}, {"user.bin", std::string("a\0b\xff", 4)}}});
  b.Hardlink("bin/sh", "bin/busybox");
  b.Symlink("bin/ls", "busybox", 0644);  // some image builders write a mode into symlink headers
  b.Add({.path = "dev", .type = AE_IFDIR, .perm = 0755});
  b.Add({.path = "dev/null", .type = AE_IFCHR, .perm = 0666, .dev_major = 1, .dev_minor = 3});
  b.Add({.path = "dev/sda", .type = AE_IFBLK, .perm = 0660, .gid = 6, .dev_major = 8, .dev_minor = 0});
  b.Add({.path = "run/fifo", .type = AE_IFIFO, .perm = 0620, .uid = 1000, .gid = 1001});
  b.Add({.path = "tmp", .type = AE_IFDIR, .perm = 01777});
  b.Add({.path = "usr/bin/sgid", .perm = 02711, .data = "#!/bin/sh\n", .uid = 1000, .gid = 50});
  b.Add({.path = "ro", .type = AE_IFDIR, .perm = 0555});
  b.File("ro/inside", "in a read-only dir", 0444);
  b.File("empty", "", 0600);
  return b;
}

void ExpectMtime(const fs::path& p, int64_t sec, long nsec) {
  struct stat st;
  ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
  EXPECT_EQ(st.st_mtim.tv_sec, sec) << p;
  EXPECT_EQ(st.st_mtim.tv_nsec, nsec) << p;
}

class UnpackFormatTest : public UnpackTest, public ::testing::WithParamInterface<Compression> {};

TEST_P(UnpackFormatTest, EveryEntryTypeIntoTreeAndIndex) {
  TarBuilder b = EveryEntryType();
  std::string plain = b.Build(Compression::kNone);
  auto diff_id = Unpack(b.Build(GetParam()));
  ASSERT_TRUE(diff_id.ok()) << diff_id.status().message();
  EXPECT_EQ(*diff_id, Sha256Of(plain));  // the diff_id is the uncompressed tar's digest

  EXPECT_EQ(Paths(), (std::vector<std::string>{"", "bin", "bin/busybox", "bin/ls", "bin/sh", "dev", "dev/null",
                                               "dev/sda", "empty", "ro", "ro/inside", "run/fifo", "tmp",
                                               "usr/bin/sgid"}));
  const LayerEntry* bb = Find("bin/busybox");
  EXPECT_EQ(bb->type, EntryType::kRegular);
  EXPECT_EQ(bb->mode, 04755u);
  EXPECT_EQ(bb->size, 70000u);
  EXPECT_EQ(bb->mtime_sec, 1650000000);
  EXPECT_EQ(bb->mtime_nsec, 123456789u);
  ASSERT_EQ(bb->xattrs.size(), 2u);
  EXPECT_EQ(bb->xattrs[0].first, "security.capability");
  EXPECT_EQ(bb->xattrs[0].second.size(), 20u);
  EXPECT_EQ(bb->xattrs[1], (std::pair<std::string, std::string>{"user.bin", std::string("a\0b\xff", 4)}));
  const LayerEntry* sh = Find("bin/sh");
  EXPECT_NE(bb->hardlink_group, 0u);
  EXPECT_EQ(sh->hardlink_group, bb->hardlink_group);
  EXPECT_EQ(sh->size, 70000u);
  EXPECT_EQ(sh->mode, 04755u);
  EXPECT_EQ(Find("bin/ls")->type, EntryType::kSymlink);
  EXPECT_EQ(Find("bin/ls")->link_target, "busybox");
  EXPECT_EQ(Find("bin/ls")->mode, 0777u);  // as the kernel shows every symlink (and overlayfs)
  EXPECT_EQ(Find("bin/ls")->size, 7u);
  EXPECT_EQ(Find("dev/null")->type, EntryType::kCharDevice);
  EXPECT_EQ(Find("dev/null")->rdev, makedev(1, 3));
  EXPECT_EQ(Find("dev/sda")->type, EntryType::kBlockDevice);
  EXPECT_EQ(Find("dev/sda")->rdev, makedev(8, 0));
  EXPECT_EQ(Find("dev/sda")->gid, 6u);
  EXPECT_EQ(Find("run/fifo")->type, EntryType::kFifo);
  EXPECT_EQ(Find("run/fifo")->uid, 1000u);
  EXPECT_EQ(Find("tmp")->mode, 01777u);
  EXPECT_EQ(Find("usr/bin/sgid")->mode, 02711u);
  EXPECT_EQ(Find("usr/bin/sgid")->gid, 50u);
  EXPECT_EQ(Find("")->type, EntryType::kDirectory);
  EXPECT_EQ(Find("bin")->mtime_nsec, 987654321u);

  // The tree.
  EXPECT_EQ(testing::ReadFile(tree() / "bin/busybox"), Pattern(70000, 1));
  struct stat a, l;
  ASSERT_EQ(::stat((tree() / "bin/busybox").c_str(), &a), 0);
  ASSERT_EQ(::stat((tree() / "bin/sh").c_str(), &l), 0);
  EXPECT_EQ(a.st_ino, l.st_ino);  // a real hard link
  EXPECT_EQ(a.st_mode & 07777, 04755u);
  EXPECT_EQ(fs::read_symlink(tree() / "bin/ls"), "busybox");
  EXPECT_TRUE(fs::is_fifo(tree() / "run/fifo"));
  EXPECT_EQ(fs::status(tree() / "tmp").permissions(), fs::perms(01777));
  EXPECT_EQ(fs::status(tree() / "ro").permissions(), fs::perms(0555));
  EXPECT_EQ(testing::ReadFile(tree() / "ro/inside"), "in a read-only dir");
  EXPECT_EQ(fs::file_size(tree() / "empty"), 0u);
  ExpectMtime(tree() / "bin/busybox", 1650000000, 123456789);
  ExpectMtime(tree() / "bin", 1600000000, 987654321);  // set after its children were written
  char buf[64];
  ssize_t n = ::getxattr((tree() / "bin/busybox").c_str(), "user.bin", buf, sizeof buf);
  if (n >= 0) {
    EXPECT_EQ(std::string(buf, n), std::string("a\0b\xff", 4));
  }
  if (IsRoot()) {
    EXPECT_TRUE(fs::is_character_file(tree() / "dev/null"));
    struct stat d;
    ASSERT_EQ(::stat((tree() / "dev/null").c_str(), &d), 0);
    EXPECT_EQ(d.st_rdev, makedev(1, 3));
    EXPECT_TRUE(fs::is_block_file(tree() / "dev/sda"));
    struct stat s;
    ASSERT_EQ(::stat((tree() / "usr/bin/sgid").c_str(), &s), 0);
    EXPECT_EQ(s.st_uid, 1000u);
    EXPECT_EQ(s.st_gid, 50u);
    EXPECT_EQ(s.st_mode & 07777, 02711u);
    EXPECT_GE(::getxattr((tree() / "bin/busybox").c_str(), "security.capability", buf, sizeof buf), 0);
  }
  ExpectNothingOutsideTree();
}

INSTANTIATE_TEST_SUITE_P(Formats, UnpackFormatTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kZstd),
                         [](const auto& info) {
                           return std::string(info.param == Compression::kNone   ? "Plain"
                                              : info.param == Compression::kGzip ? "Gzip"
                                                                                 : "Zstd");
                         });

// Files whose owner and mode a plain create already gives are not chowned or chmodded: the
// tree on disk must still be exactly the layer's whatever the umask (0022 strips 0666's bits)
// and under a set-group-ID tree root (whose group new files would get instead of root's).
TEST_F(UnpackTest, OwnersAndModesOnDiskAreTheLayersWhateverTheUmaskAndTreeRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root";
  ASSERT_EQ(::chown(tree().c_str(), 0, 100), 0);
  ASSERT_EQ(::chmod(tree().c_str(), 02755), 0);
  mode_t old_umask = ::umask(022);
  TarBuilder b;
  b.Add({.path = "plain", .perm = 0644, .data = "a"});
  b.Add({.path = "open", .perm = 0666, .data = "b"});
  b.Add({.path = "private", .perm = 0600, .data = "c", .uid = 0, .gid = 0});
  b.Add({.path = "user", .perm = 0755, .data = "d", .uid = 1000, .gid = 1000});
  b.Add({.path = "group100", .perm = 0644, .data = "e", .uid = 0, .gid = 100});
  b.Add({.path = "suid", .perm = 04755, .data = "f"});
  b.Add({.path = "link", .type = AE_IFLNK, .link = "plain"});
  auto r = Unpack(b.Build());
  ::umask(old_umask);
  ASSERT_TRUE(r.ok()) << r.status().message();
  struct Want {
    const char* path;
    mode_t mode;
    uid_t uid;
    gid_t gid;
  };
  for (const Want& w : {Want{"plain", 0644, 0, 0}, Want{"open", 0666, 0, 0}, Want{"private", 0600, 0, 0},
                        Want{"user", 0755, 1000, 1000}, Want{"group100", 0644, 0, 100}, Want{"suid", 04755, 0, 0}}) {
    struct stat st;
    ASSERT_EQ(::lstat((tree() / w.path).c_str(), &st), 0) << w.path;
    EXPECT_EQ(st.st_mode & 07777, w.mode) << w.path;
    EXPECT_EQ(st.st_uid, w.uid) << w.path;
    EXPECT_EQ(st.st_gid, w.gid) << w.path;
  }
  struct stat st;
  ASSERT_EQ(::lstat((tree() / "link").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 0u) << "a symlink's group too";
}

TEST_F(UnpackTest, WhiteoutsAndOpaqueDirectoriesAreIndexedNotWritten) {
  TarBuilder b;
  b.Dir("etc");
  b.File("etc/.wh.passwd", "");
  b.File(".wh.gone", "");
  b.File("usr/.wh..wh..opq", "");  // no "usr" entry in the tar
  b.Add({.path = "var", .type = AE_IFDIR, .perm = 0700});
  b.File("var/.wh..wh..opq", "");
  b.File("var/keep", "k");
  b.File(".wh..wh.plnk/123", "aufs hard-link store: not part of the image");
  auto r = Unpack(b.Build(Compression::kGzip));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Paths(), (std::vector<std::string>{"etc", "etc/passwd", "gone", "usr", "var", "var/keep"}));
  EXPECT_EQ(Find("etc/passwd")->type, EntryType::kWhiteout);
  EXPECT_EQ(Find("gone")->type, EntryType::kWhiteout);
  EXPECT_EQ(Find("usr")->type, EntryType::kDirectory);
  EXPECT_TRUE(Find("usr")->opaque);
  EXPECT_TRUE(Find("var")->opaque);
  EXPECT_EQ(Find("var")->mode, 0700u);
  EXPECT_FALSE(Find("etc")->opaque);
  EXPECT_EQ(testing::ListTree(tree()), (std::set<std::string>{"etc", "usr", "var", "var/keep"}));
}

TEST_F(UnpackTest, OpaqueMarkerBeforeItsDirectoryEntryStillCounts) {
  TarBuilder b;
  b.File("d/.wh..wh..opq", "");
  b.Add({.path = "d", .type = AE_IFDIR, .perm = 0750, .uid = 7});
  ASSERT_TRUE(Unpack(b.Build()).ok());
  ASSERT_NE(Find("d"), nullptr);
  EXPECT_TRUE(Find("d")->opaque);
  EXPECT_EQ(Find("d")->mode, 0750u);
  EXPECT_EQ(Find("d")->uid, 7u);
}

TEST_F(UnpackTest, PathsAreNormalised) {
  TarBuilder b;
  b.Dir("./a/");
  b.File("./a//b", "x");
  b.File("c/./d", "y");
  ASSERT_TRUE(Unpack(b.Build()).ok());
  // Parents implied by a path but absent from the tar exist in the tree, not in the index.
  EXPECT_EQ(Paths(), (std::vector<std::string>{"a", "a/b", "c/d"}));
  EXPECT_EQ(testing::ReadFile(tree() / "c/d"), "y");
}

TEST_F(UnpackTest, LaterEntriesReplaceEarlierOnes) {
  TarBuilder b;
  b.File("x", "first");
  b.File("x", "second", 0600);
  b.Dir("d");
  b.File("d/f", "child");
  b.File("d", "now a file");
  b.File("s", "file");
  b.Symlink("s", "target");
  b.Symlink("t", "/etc/passwd");
  b.File("t", "replaces the symlink, never writes through it");
  ASSERT_TRUE(Unpack(b.Build()).ok());
  EXPECT_EQ(Paths(), (std::vector<std::string>{"d", "s", "t", "x"}));
  EXPECT_EQ(testing::ReadFile(tree() / "x"), "second");
  EXPECT_EQ(Find("x")->mode, 0600u);
  EXPECT_EQ(Find("d")->type, EntryType::kRegular);
  EXPECT_EQ(testing::ReadFile(tree() / "d"), "now a file");
  EXPECT_EQ(fs::read_symlink(tree() / "s"), "target");
  EXPECT_FALSE(fs::is_symlink(tree() / "t"));
  EXPECT_EQ(testing::ReadFile(tree() / "t"), "replaces the symlink, never writes through it");
}

TEST_F(UnpackTest, BigFilesAndManySmallFilesCrossChunkBoundaries) {
  TarBuilder b;
  b.File("big", Pattern(3 * 1024 * 1024 + 17, 7));
  for (int i = 0; i < 1500; ++i) b.File("small/f" + std::to_string(i), Pattern(500 + i * 3, i));
  std::string plain = b.Build();
  auto r = Unpack(b.Build(Compression::kGzip));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, Sha256Of(plain));
  EXPECT_EQ(testing::ReadFile(tree() / "big"), Pattern(3 * 1024 * 1024 + 17, 7));
  for (int i = 0; i < 1500; i += 97) EXPECT_EQ(testing::ReadFile(tree() / ("small/f" + std::to_string(i))), Pattern(500 + i * 3, i));
  EXPECT_EQ(index_.entries().size(), 1501u);
}

TEST_F(UnpackTest, DiffIdCoversPaddingAfterTheEndMarker) {
  TarBuilder b;
  b.File("a", "x");
  std::string plain = b.Build() + std::string(20000, '\0');
  auto r = Unpack(plain);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, Sha256Of(plain));
}

TEST_F(UnpackTest, NonAsciiNames) {
  TarBuilder b;
  b.File("caf\xc3\xa9/na\xc3\xafve.txt", "utf8");
  ASSERT_TRUE(Unpack(b.Build()).ok());
  EXPECT_EQ(Paths(), (std::vector<std::string>{"caf\xc3\xa9/na\xc3\xafve.txt"}));
  EXPECT_EQ(testing::ReadFile(tree() / "caf\xc3\xa9/na\xc3\xafve.txt"), "utf8");
}

TEST_F(UnpackTest, ProgressReportsCompressedBytes) {
  TarBuilder b;
  b.File("f", Pattern(4 << 20, 3));
  std::string blob = b.Build(Compression::kGzip);
  testing::WriteFile(base() / "blob", blob);
  std::vector<uint64_t> seen;
  auto r = UnpackLayer(base() / "blob", tree(), &index_, [&](uint64_t n) { seen.push_back(n); });
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), blob.size());
}

// ---- hostile and broken archives ----

TEST_F(UnpackTest, RefusesDotDot) {
  ExpectRefused(TarBuilder().File("../x", "evil").Build(), "../x");
  ExpectRefused(TarBuilder().File("a/../../x", "evil").Build(), "a/../../x");
  ExpectRefused(TarBuilder().File("ok", "fine").File("a/b/../../../x", "evil").Build(Compression::kGzip),
                "a/b/../../../x");
  ExpectRefused(TarBuilder().Symlink("../evil", "x").Build(), "../evil");
}

TEST_F(UnpackTest, AbsolutePathsStayInsideTheLayer) {
  fs::path outside = base() / "outside" / "x";  // an absolute path that exists on this host
  auto r = Unpack(TarBuilder().File(outside.string(), "contained").Build());
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string rel = outside.relative_path().string();
  EXPECT_EQ(Paths(), std::vector<std::string>{rel});
  EXPECT_EQ(testing::ReadFile(tree() / rel), "contained");
  EXPECT_FALSE(fs::exists(outside));
  ExpectNothingOutsideTree();
}

// Symlinked parents are followed as containerd follows them (fs.RootPath): inside the layer
// root, where an absolute target starts at the root and ".." stops there. The entry is written
// and indexed at the resolved path; nothing ever lands outside the tree.
TEST_F(UnpackTest, SymlinkedParentsResolveInsideTheLayer) {
  auto ok = [&](const TarBuilder& b) {
    fs::remove_all(tree());
    fs::create_directories(tree());
    auto r = Unpack(b.Build(Compression::kGzip));
    EXPECT_TRUE(r.ok()) << r.status().message();
    ExpectNothingOutsideTree();
  };
  ok(TarBuilder().Symlink("up", "../..").File("up/evil", "x"));
  EXPECT_EQ(Paths(), (std::vector<std::string>{"evil", "up"}));
  EXPECT_EQ(testing::ReadFile(tree() / "evil"), "x");
  EXPECT_EQ(fs::read_symlink(tree() / "up"), "../..");

  std::string host = base().relative_path().string();  // an absolute target is taken from the layer root
  ok(TarBuilder().Symlink("abs", base().string()).File("abs/evil", "x"));
  EXPECT_EQ(testing::ReadFile(tree() / host / "evil"), "x");
  EXPECT_NE(Find(host + "/evil"), nullptr);

  ok(TarBuilder().Dir("usr").Symlink("etc", "/usr/etc").File("etc/passwd", "root:x:0:0").Symlink("usr/lib", "../lib").File("usr/lib/libc.so", "elf"));
  EXPECT_EQ(testing::ReadFile(tree() / "usr/etc/passwd"), "root:x:0:0");
  EXPECT_EQ(testing::ReadFile(tree() / "lib/libc.so"), "elf");
  EXPECT_EQ(Find("usr/etc/passwd")->type, EntryType::kRegular);
  EXPECT_EQ(Find("etc/passwd"), nullptr);
  EXPECT_EQ(Find("etc")->type, EntryType::kSymlink);

  ok(TarBuilder().Symlink("in", "sub").Dir("sub").File("in/f", "x"));
  EXPECT_EQ(Paths(), (std::vector<std::string>{"in", "sub", "sub/f"}));

  ok(TarBuilder().Dir("d").File("d/old", "gone").Symlink("d", "../..").Dir("d/sub"));
  EXPECT_EQ(Paths(), (std::vector<std::string>{"d", "sub"}));
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(tree() / "sub")));

  ok(TarBuilder().File("f", "data").Symlink("l", "../..").Hardlink("l/h", "f").Hardlink("h2", "l/l/f"));
  EXPECT_EQ(fs::equivalent(tree() / "h", tree() / "f"), true);
  EXPECT_EQ(fs::equivalent(tree() / "h2", tree() / "f"), true);

  // The last component is never followed: a new entry replaces the symlink.
  ok(TarBuilder().Symlink("t", "/etc/passwd").File("t", "replaced"));
  EXPECT_EQ(testing::ReadFile(tree() / "t"), "replaced");
}

TEST_F(UnpackTest, RefusesSymlinkLoopsAndFilesAsDirectories) {
  ExpectRefused(TarBuilder().Symlink("a", "b").Symlink("b", "a").File("a/x", "loop").Build(), "a/x");
  ExpectRefused(TarBuilder().File("f", "plain").Symlink("s", "f").File("s/x", "under a file").Build(), "s/x");
  ExpectRefused(TarBuilder().Symlink("l", "../..").Hardlink("l/h", "f").Build(), "l/h");
}

TEST_F(UnpackTest, RefusesHardLinksOutOfTheLayer) {
  testing::WriteFile(base() / "victim", "do not link me");
  allowed_.insert("victim");
  ExpectRefused(TarBuilder().Hardlink("h", "../../victim").Build(), "h");
  ExpectRefused(TarBuilder().Hardlink("h", (base() / "victim").string()).Build(), "h");
  ExpectRefused(TarBuilder().Symlink("l", "..").Hardlink("h", "l/victim").Build(), "h");
  fs::remove(base() / "victim");
  // A hard link to a symlink links the symlink itself; the symlink's target is just data.
  auto r = Unpack(TarBuilder().Symlink("s", "/etc/passwd").Hardlink("h", "s").Build());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(fs::read_symlink(tree() / "h"), "/etc/passwd");
}

TEST_F(UnpackTest, RefusesGarbageAndTruncatedInput) {
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"garbage", Pattern(5000, 9)}, {"text", std::string(3000, 'x')}}) {
    auto r = Unpack(bytes);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_NE(r.status().message().find("not a tar archive"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(Unpack("").ok());

  TarBuilder b;
  b.File("a", Pattern(300000, 4));
  b.File("b", Pattern(300000, 5));
  std::string gz = b.Build(Compression::kGzip);
  auto r = Unpack(gz.substr(0, gz.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gzip"), std::string::npos) << r.status().message();
  EXPECT_TRUE(fs::is_empty(tree()));

  std::string plain = b.Build();
  r = Unpack(plain.substr(0, 400000));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("runcated"), std::string::npos) << r.status().message();
  EXPECT_TRUE(fs::is_empty(tree()));
  EXPECT_TRUE(index_.entries().empty());
  ExpectNothingOutsideTree();
}

TEST_F(UnpackTest, ErrorNamesTheLayerBlob) {
  Digest d = Sha256Of("whatever");
  testing::WriteFile(base() / d.hex(), "not a tar, not gzip, nothing at all....");
  auto r = UnpackLayer(base() / d.hex(), tree(), &index_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("layer " + d.str() + ": ", 0), 0u) << r.status().message();
}

// As an unprivileged user: devices are indexed but not created, ownership is only in the index.
TEST_F(UnpackTest, UnprivilegedUnpackIndexesDevicesWithoutCreatingThem) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  if (!kForkedUnpackWorks) GTEST_SKIP() << "ThreadSanitizer: no threads in a fork of a threaded process";
  std::string blob = EveryEntryType().Build(Compression::kGzip);
  testing::WriteFile(base() / "blob", blob);
  fs::path t = tree();
  ASSERT_EQ(::chown(t.c_str(), 65534, 65534), 0);
  for (const fs::path& p : {dir_.path(), dir_.path() / "sentinel", dir_.path() / "blob"}) ASSERT_EQ(::chmod(p.c_str(), 0755), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    if (::access((base() / "blob").c_str(), R_OK) != 0) ::_exit(20);  // sandbox denies "nobody"
    LayerIndex idx;
    auto r = UnpackLayer(base() / "blob", t, &idx);
    if (!r.ok()) {
      std::fprintf(stderr, "unprivileged unpack: %s\n", r.status().message().c_str());
      ::_exit(11);
    }
    bool indexed = false;
    for (const auto& e : idx.entries()) indexed |= e.path == "dev/null" && e.type == EntryType::kCharDevice;
    if (!indexed) ::_exit(12);
    if (fs::exists(fs::symlink_status(t / "dev/null"))) ::_exit(13);
    if (testing::ReadFile(t / "bin/busybox") != Pattern(70000, 1)) ::_exit(14);
    struct stat st;
    if (::stat((t / "ro").c_str(), &st) != 0 || (st.st_mode & 07777) != 0555) ::_exit(15);
    ::_exit(0);
  }
  int ws = 0;
  ASSERT_EQ(::waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws));
  if (WEXITSTATUS(ws) == 20) GTEST_SKIP() << "this machine does not let an unprivileged user read /tmp";
  EXPECT_EQ(WEXITSTATUS(ws), 0) << "child failed check " << WEXITSTATUS(ws);
}

// Root without CAP_MKNOD (a container runtime's usual setup): devices are indexed, not created.
TEST_F(UnpackTest, RootWithoutMknodCapabilityStillIndexesDevices) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  if (!kForkedUnpackWorks) GTEST_SKIP() << "ThreadSanitizer: no threads in a fork of a threaded process";
  testing::WriteFile(base() / "blob", EveryEntryType().Build());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2];
    if (::syscall(SYS_capget, &hdr, data) != 0) ::_exit(10);
    data[CAP_MKNOD / 32].effective &= ~(1u << (CAP_MKNOD % 32));
    data[CAP_MKNOD / 32].permitted &= ~(1u << (CAP_MKNOD % 32));
    if (::syscall(SYS_capset, &hdr, data) != 0) ::_exit(11);
    LayerIndex idx;
    auto r = UnpackLayer(base() / "blob", tree(), &idx);
    if (!r.ok()) {
      std::fprintf(stderr, "unpack without CAP_MKNOD: %s\n", r.status().message().c_str());
      ::_exit(12);
    }
    int devices = 0;
    for (const auto& e : idx.entries())
      devices += e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice;
    if (devices != 2) ::_exit(13);
    if (fs::exists(fs::symlink_status(tree() / "dev/null"))) ::_exit(14);
    if (testing::ReadFile(tree() / "bin/busybox") != Pattern(70000, 1)) ::_exit(15);
    ::_exit(0);
  }
  int ws = 0;
  ASSERT_EQ(::waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws));
  EXPECT_EQ(WEXITSTATUS(ws), 0) << "child failed check " << WEXITSTATUS(ws);
}

}  // namespace
}  // namespace layerfs
