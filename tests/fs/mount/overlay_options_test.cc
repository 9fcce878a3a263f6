// `layerfs overlay` option parsing (fuse-overlayfs's syntax) and the id mappings it builds.
#include <sys/mount.h>

#include <gtest/gtest.h>

#include "fs/engine/id_map.h"
#include "fs/mount/overlay_options.h"

namespace layerfs {
namespace {

namespace fs = std::filesystem;

Result<OverlayOptions> Parse(const std::string& text) { return ParseOverlayOptions(SplitOverlayOptions(text), "/mnt/x"); }

TEST(OverlayOptions, LowersAreReversedToBottomFirstAndMadeAbsolute) {
  auto o = Parse("lowerdir=/l/top:/l/mid:rel/bottom,upperdir=/u,workdir=/w");
  ASSERT_TRUE(o.ok()) << o.status().message();
  const auto& c = o->config;
  ASSERT_EQ(c.lower_dirs.size(), 3u);
  EXPECT_EQ(c.lower_dirs[0], fs::current_path() / "rel/bottom");
  EXPECT_EQ(c.lower_dirs[1], fs::path("/l/mid"));
  EXPECT_EQ(c.lower_dirs[2], fs::path("/l/top"));
  EXPECT_EQ(c.upper_dir, fs::path("/u"));
  EXPECT_EQ(c.work_dir, fs::path("/w"));
  EXPECT_EQ(c.mountpoint, fs::path("/mnt/x"));
  EXPECT_TRUE(c.rename_copies_subtree);
  EXPECT_TRUE(c.owners.identity());
}

TEST(OverlayOptions, EscapedColonAndCommaStayInPaths) {
  auto o = Parse(R"(lowerdir=/a\:b:/c\,d)");
  ASSERT_TRUE(o.ok()) << o.status().message();
  ASSERT_EQ(o->config.lower_dirs.size(), 2u);
  EXPECT_EQ(o->config.lower_dirs[0], fs::path("/c,d"));
  EXPECT_EQ(o->config.lower_dirs[1], fs::path("/a:b"));
}

TEST(OverlayOptions, WithoutUpperIsReadOnly) {
  auto o = Parse("lowerdir=/a");
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_TRUE(o->config.upper_dir.empty());
  EXPECT_TRUE(o->config.work_dir.empty());
}

TEST(OverlayOptions, OwnerOptions) {
  auto o = Parse("lowerdir=/a,squash_to_uid=7,squash_to_gid=8,uidmapping=:0:1000:1:1:100000:65536,gidmapping=0:2000:10");
  ASSERT_TRUE(o.ok()) << o.status().message();
  const OwnerPolicy& p = o->config.owners;
  EXPECT_EQ(p.ShownUid(1234), 7u);
  EXPECT_EQ(p.ShownGid(1234), 8u);
  // Stored (container) ids show as host ids; host ids are stored as container ids.
  EXPECT_EQ(p.uids.Shown(0), 1000u);
  EXPECT_EQ(p.uids.Shown(1), 100000u);
  EXPECT_EQ(p.uids.Shown(65536), 165535u);
  EXPECT_EQ(p.uids.Shown(65537), IdMap::kOverflowId);
  EXPECT_EQ(p.uids.Stored(1000), 0u);
  EXPECT_EQ(p.uids.Stored(100004), 5u);
  EXPECT_EQ(p.uids.Stored(70000), IdMap::kOverflowId);
  EXPECT_EQ(p.gids.Shown(9), 2009u);

  auto root = Parse("lowerdir=/a,squash_to_root");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->config.owners.ShownUid(1000), 0u);
  EXPECT_EQ(root->config.owners.ShownGid(1000), 0u);
}

TEST(OverlayOptions, MountFlagsPassToFuseAndIgnoredOnesAreListed) {
  auto o = Parse(
      "lowerdir=/a,ro,nosuid,nodev,noexec,noatime,allow_other,default_permissions,fsname=ctr,"
      "static_nlink,noacl,fsync=0,volatile,fsync=1,debug");
  ASSERT_TRUE(o.ok()) << o.status().message();
  const auto& c = o->config;
  EXPECT_EQ(c.flags.set, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME));
  EXPECT_EQ(c.flags.FuseOptions(/*privileged=*/true), (std::vector<std::string>{"ro", "nosuid", "nodev", "noexec", "noatime"}));
  EXPECT_TRUE(c.fuse_options.empty());
  EXPECT_TRUE(c.allow_other);
  EXPECT_TRUE(c.static_nlink);
  EXPECT_EQ(c.fsname, "ctr");
  EXPECT_TRUE(o->debug);
  EXPECT_TRUE(c.debug);
  EXPECT_TRUE(o->ignored.empty());
  EXPECT_FALSE(c.posix_acl);  // noacl
  EXPECT_TRUE(c.sync_upper);  // the last of fsync=0, volatile, fsync=1 wins
}

TEST(OverlayOptions, Fsync0AndVolatileTurnUpperSyncOff) {
  for (const char* opts : {"lowerdir=/a,fsync=0", "lowerdir=/a,volatile", "lowerdir=/a,fsync=1,volatile"}) {
    auto o = Parse(opts);
    ASSERT_TRUE(o.ok()) << o.status().message();
    EXPECT_FALSE(o->config.sync_upper) << opts;
  }
  auto plain = Parse("lowerdir=/a");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->config.sync_upper);
}

TEST(OverlayOptions, IndexCacheDefaultsToTheCacheDirAndCanBeChangedOrTurnedOff) {
  const char* saved = std::getenv("LAYERFS_INDEX_CACHE");
  std::string keep = saved != nullptr ? saved : "";
  ::setenv("LAYERFS_INDEX_CACHE", "/var/tmp/idx", 1);
  EXPECT_EQ(Parse("lowerdir=/a")->config.index_cache, "/var/tmp/idx");
  if (saved != nullptr) ::setenv("LAYERFS_INDEX_CACHE", keep.c_str(), 1);
  else
    ::unsetenv("LAYERFS_INDEX_CACHE");
  EXPECT_EQ(Parse("lowerdir=/a,index_cache=/c")->config.index_cache, "/c");
  EXPECT_TRUE(Parse("lowerdir=/a,noindex_cache")->config.index_cache.empty());
  EXPECT_FALSE(Parse("lowerdir=/a,index_cache=").ok());
}

TEST(OverlayOptions, XattrPermissionsIsForceMask) {
  for (int n : {0, 1, 2}) {
    auto o = Parse("lowerdir=/a,xattr_permissions=" + std::to_string(n));
    ASSERT_TRUE(o.ok()) << o.status().message();
    EXPECT_EQ(o->config.xattr_permissions, n);
  }
  auto plain = Parse("lowerdir=/a");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->config.xattr_permissions, 0);
}

TEST(OverlayOptions, SelinuxContextIgnoredWithoutSelinux) {
  if (access("/sys/fs/selinux/enforce", F_OK) == 0) GTEST_SKIP() << "SELinux is on here";
  // containers/storage quotes the label; the comma inside it does not split the option.
  auto o = Parse("lowerdir=/a,context=\"system_u:object_r:container_file_t:s0:c1,c2\"");
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->ignored, (std::vector<std::string>{"context=\"system_u:object_r:container_file_t:s0:c1,c2\""}));
  auto plain = Parse("lowerdir=/a,context=system_u:object_r:container_file_t:s0");
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_TRUE(plain->config.fuse_options.empty());
  EXPECT_EQ(plain->ignored.size(), 1u);
}

struct BadCase {
  const char* options;
  const char* message_part;
};

TEST(OverlayOptions, BadOptionsAreOneClearError) {
  const BadCase cases[] = {
      {"upperdir=/u,workdir=/w", "missing option lowerdir"},
      {"lowerdir=/a,upperdir=/u", "upperdir= given without workdir="},
      {"lowerdir=/a,workdir=/w", "workdir= given without upperdir="},
      {"lowerdir=/a,upperdir=/u,workdir=/u", "must differ"},
      {"lowerdir=/a:/u,upperdir=/u,workdir=/w", "also a lowerdir"},
      {"lowerdir=/a::/b", "option lowerdir=/a::/b: empty directory"},
      {"lowerdir=", "option lowerdir=: empty directory"},
      {"lowerdir=/a,frobnicate", "option frobnicate: unknown option"},
      {"lowerdir=/a,frob=1", "option frob=1: unknown option"},
      {"lowerdir=/a,redirect_dir=on", "option redirect_dir=on: unknown option"},
      {"lowerdir=/a,squash_to_uid=x", "option squash_to_uid=x: \"x\" is not a uid/gid"},
      {"lowerdir=/a,squash_to_gid=", "is not a uid/gid"},
      {"lowerdir=/a,uidmapping=0:1000", "expects CONTAINER:HOST:SIZE triples"},
      {"lowerdir=/a,uidmapping=0:1000:0", "empty or exceeds"},
      {"lowerdir=/a,gidmapping=0:1:10:5:100:1", "overlaps"},
      {"lowerdir=/a,uidmapping=0:a:1", "\"a\" is not a number"},
      {"lowerdir=/a,fsync=2", "option fsync=2: expects 0 or 1"},
      {"lowerdir=/a,xattr_permissions=3", "option xattr_permissions=3: expects 0, 1 or 2"},
      {"lowerdir=/a,xattr_permissions=", "option xattr_permissions=: expects 0, 1 or 2"},
      {"lowerdir=/a,fsname=", "option fsname=: empty"},
  };
  for (const auto& c : cases) {
    auto o = Parse(c.options);
    ASSERT_FALSE(o.ok()) << c.options;
    EXPECT_EQ(o.status().code(), EINVAL) << c.options;
    EXPECT_NE(o.status().message().find(c.message_part), std::string::npos)
        << c.options << " -> " << o.status().message();
    EXPECT_EQ(o.status().message().find('\n'), std::string::npos) << c.options;
  }
}

TEST(OverlayOptions, SplitKeepsEscapesAndSkipsEmpty) {
  EXPECT_EQ(SplitOverlayOptions(R"(a,b\,c,,d)"), (std::vector<std::string>{"a", R"(b\,c)", "", "d"}));
  auto o = Parse("lowerdir=/a,,");
  EXPECT_TRUE(o.ok());
}

}  // namespace
}  // namespace layerfs

namespace layerfs {
namespace {

// mount(8)'s generic options in order, as libmount applies them; what libfuse 3.14 cannot pass
// (strictatime, nodiratime, lazytime) is left to a remount as root.
TEST(MountFlags, ParsedInOrderAndSplitBetweenLibfuseAndRemount) {
  MountFlags f;
  for (const char* o : {"noatime", "atime", "relatime", "nosuid", "suid", "nodev", "sync", "dirsync", "lazytime"})
    EXPECT_TRUE(f.Parse(o)) << o;
  EXPECT_FALSE(f.Parse("user_xattr"));
  EXPECT_EQ(f.set, static_cast<unsigned long>(MS_RELATIME | MS_NODEV | MS_SYNCHRONOUS | MS_DIRSYNC | MS_LAZYTIME));
  EXPECT_EQ(f.FuseOptions(/*privileged=*/true), (std::vector<std::string>{"nodev", "sync", "dirsync", "suid"}));
  EXPECT_EQ(f.FuseOptions(/*privileged=*/false), (std::vector<std::string>{"nodev", "sync", "dirsync"}));
  EXPECT_EQ(f.KernelOnly(), static_cast<unsigned long>(MS_LAZYTIME));
  EXPECT_EQ(f.KernelOnlyName(), "lazytime");
  MountFlags strict;
  EXPECT_TRUE(strict.Parse("strictatime"));
  EXPECT_TRUE(strict.Parse("nodiratime"));
  EXPECT_EQ(strict.KernelOnly(), static_cast<unsigned long>(MS_STRICTATIME | MS_NODIRATIME));
  EXPECT_FALSE(strict.noatime());
  EXPECT_TRUE(strict.nodiratime());
  EXPECT_TRUE(strict.Parse("noatime"));
  EXPECT_FALSE(strict.noatime()) << "strictatime overrides noatime (mount(2))";
  MountFlags no;
  EXPECT_TRUE(no.Parse("noatime"));
  EXPECT_TRUE(no.noatime());
  EXPECT_TRUE(no.nodiratime());
}

}  // namespace
}  // namespace layerfs
