// `layerfs mount --lazy` against a real docker-registry on 127.0.0.1, serving an image pushed
// by `layerfs push --estargz` (64 KiB chunks; hard links, a whiteout, xattrs and owners, a
// symlink, multi-chunk files): the lazy mount's tree equals an eager pull + mount's, entry by
// entry, before and after the background fetch, which then leaves ordinary layers and the
// image in `images`; in-process, without the background fetch, a read brings only part of
// the blob and a copy-up the whole file, and with the registry stopped a file never read gives
// EIO (a copy-up of one too) while what was fetched still reads.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fs/mount/lazy_image_lowers.h"
#include "fs/mount/mount.h"
#include "layerstore/archive/image_load.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/fs/tree_snapshot.h"
#include "tests/tools/registry_fixture.h"
#include "tests/tools/shell_command.h"
#include "tests/tools/test_images.h"

namespace layerfs::testing {
namespace {

namespace stdfs = std::filesystem;

TestLayer GzipLayer(const TarBuilder& b) {
  std::string tar = b.Build();
  TestLayer l;
  l.blob = Gzip(tar);
  l.media_type = kOciLayerGzipType;
  l.digest = Sha256Of(l.blob);
  l.diff_id = Sha256Of(tar);
  return l;
}

// GETs of blob `digest` of team/lazy in the registry's access log.
size_t BlobGets(const LocalRegistry& registry, const Digest& digest) {
  std::string log = registry.Log(), needle = "\"GET /v2/team/lazy/blobs/" + digest.str();
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

// 4 KiB at offset of file, its page cache dropped first so that the daemon answers: the
// bytes' sha256, or "errno N".
std::string ReadUncached(const stdfs::path& file, off_t offset) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "errno " + std::to_string(errno);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::string buf(4096, '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
  std::string out = n < 0 ? "errno " + std::to_string(errno) : Sha256Of(buf.substr(0, n)).str();
  ::close(fd);
  return out;
}

class LazyMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LocalRegistry::Available()) GTEST_SKIP() << "docker-registry is not installed";
    std::string error;
    LocalRegistry::Options o;
    o.access_log = true;
    registry_ = LocalRegistry::Start(o, &error);
    ASSERT_TRUE(registry_) << error;
    ref_ = registry_->host() + "/team/lazy:v1";
    tool_ = RandomBytes(1 << 20, 5);
    second_ = RandomBytes(300000, 3);
    TarBuilder base;
    base.Dir("etc/").File("etc/os-release", "ID=lazy\n").File("etc/gone", "bye\n");
    base.Add({.path = "etc/attr", .data = "x", .uid = 1000, .gid = 100, .xattrs = {{"user.note", "lazy"}}});
    base.Dir("usr/").Dir("usr/bin/").File("usr/bin/tool", tool_, 0755).Hardlink("usr/bin/tool2", "usr/bin/tool");
    base.Symlink("usr/bin/sh", "tool").Dir("data/").File("data/second", second_);
    TarBuilder top;
    top.File("etc/.wh.gone", "").File("etc/app.conf", "port=1\n");
    image_ = MakeImage({GzipLayer(base), GzipLayer(top)}, {"v1"});

    stdfs::path archive = dir_.path() / "image.tar";
    WriteOciArchive(archive, {image_});
    auto src = Store::Open(Root("src"));
    ASSERT_TRUE(src.ok());
    ASSERT_TRUE(LoadImages(*src, archive, {}).ok());
    ASSERT_TRUE(ImageStore(*src).Tag(image_.config_digest.str(), ref_).ok());
    ShellResult push = Layerfs("src", "push --estargz --estargz-chunk-size 65536 " + ref_);
    ASSERT_EQ(push.code, 0) << push.err;
  }

  void TearDown() override {
    for (const auto& [store, dir] : cli_mounts_)
      if (Layerfs(store, "umount " + dir.string()).code != 0) ::umount2(dir.c_str(), MNT_DETACH);
    mount_.reset();
  }

  stdfs::path Root(const std::string& name) const { return dir_.path() / name; }

  ShellResult Layerfs(const std::string& store, const std::string& args) {
    return RunShellCommand(ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(Root(store).string()) + " " + args);
  }

  // `layerfs mount [extra] REF DIR` into store; DIR is unmounted at TearDown.
  stdfs::path CliMount(const std::string& store, const std::string& extra) {
    stdfs::path dir = dir_.path() / ("mnt-" + store);
    stdfs::create_directories(dir);
    ShellResult r = Layerfs(store, "mount " + extra + " " + ref_ + " " + dir.string());
    EXPECT_EQ(r.code, 0) << r.err;
    if (r.code == 0) cli_mounts_.emplace_back(store, dir);
    return dir;
  }

  // LazyImage::Pull into store "lazy" and a mount of it at mnt() in this process (upper in
  // upper/), without the background fetch: every byte a read gets is fetched for it.
  std::shared_ptr<LazyImage> MountLazyHere() {
    auto store = Store::Open(Root("lazy"));
    auto ref = ParseReference(ref_);
    EXPECT_TRUE(store.ok() && ref.ok());
    if (!store.ok() || !ref.ok()) return nullptr;
    LazyPullOptions options;
    options.max_attempts = 2;
    options.backoff = std::chrono::milliseconds(20);
    auto lazy = LazyImage::Pull(*store, *ref, options, {});
    EXPECT_TRUE(lazy.ok()) << lazy.status().message();
    if (!lazy.ok()) return nullptr;
    std::shared_ptr<LazyImage> image = std::move(*lazy);
    MountConfig c;
    c.store_root = Root("lazy");
    c.layers = image->image().diff_ids;
    c.mountpoint = mnt();
    c.upper_dir = dir_.path() / "upper";
    c.work_dir = dir_.path() / "work";
    c.lazy = std::make_shared<LazyImageLowers>(image);
    for (const auto& d : {c.mountpoint, c.upper_dir, c.work_dir}) stdfs::create_directories(d);
    auto m = Mount::Start(c);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return nullptr;
    mount_ = std::move(*m);
    return image;
  }
  stdfs::path mnt() const { return dir_.path() / "mnt"; }

  TempDir dir_;
  std::unique_ptr<LocalRegistry> registry_;
  std::string ref_, tool_, second_;
  TestImage image_;
  std::vector<std::pair<std::string, stdfs::path>> cli_mounts_;
  std::unique_ptr<Mount> mount_;  // in-process: unmounted before dir_ goes
};

TEST_F(LazyMountTest, TreeEqualsTheEagerMountAndCompletesIntoOrdinaryLayers) {
  ASSERT_EQ(Layerfs("eager", "pull " + ref_).code, 0);
  stdfs::path eager = CliMount("eager", "");
  stdfs::path lazy = CliMount("lazy", "--lazy");
  ASSERT_FALSE(HasFailure());
  fstest::CompareOptions opt;
  opt.mtime_before = 1750000000;  // the image's mtimes (1700000000), not the upper's
  std::string error;
  fstest::Tree want = fstest::SnapshotTree(eager, &error);
  ASSERT_EQ(error, "");
  EXPECT_TRUE(want.count("usr/bin/tool2") && want.count("etc/attr") && !want.count("etc/gone"));
  for (const auto& d : fstest::CompareTrees(want, fstest::SnapshotTree(lazy, &error), opt)) ADD_FAILURE() << d;
  ASSERT_EQ(error, "");

  // The background fetch records the image once every layer is ordinary.
  auto store = Store::Open(Root("lazy"));
  ASSERT_TRUE(store.ok());
  bool recorded = false;
  for (int i = 0; i < 300 && !recorded; ++i) {
    recorded = ImageStore(*store).Resolve(ref_).ok();
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(recorded) << "the image did not appear within 30 s";
  auto pulled = ImageStore(*store).Resolve(ref_);
  for (const Digest& d : pulled->diff_ids) {
    EXPECT_TRUE(LayerStore(*store).Has(d)) << d.str();
    EXPECT_FALSE(stdfs::exists(store->lazy_layer_dir(d))) << d.str();
  }
  for (const auto& d : fstest::CompareTrees(want, fstest::SnapshotTree(lazy, &error), opt)) ADD_FAILURE() << d;
  std::string log;
  for (const auto& c : stdfs::directory_iterator(Root("lazy") / "containers"))
    if (stdfs::exists(c.path() / "daemon.log")) log += ReadFile(c.path() / "daemon.log");
  EXPECT_NE(log.find(ref_ + " complete: "), std::string::npos) << log;
  ShellResult images = Layerfs("lazy", "images --format json");
  EXPECT_NE(images.out.find("\"Tag\":\"v1\""), std::string::npos) << images.out;
  EXPECT_EQ(images.out.find("Partial"), std::string::npos) << "recorded: no longer partial\n"
                                                           << images.out;
  EXPECT_EQ(Layerfs("lazy", "ps").out.find("local"), std::string::npos);
}

TEST_F(LazyMountTest, BeforeAnyBackgroundFetchTheTreeEqualsTheEagerMount) {
  ASSERT_EQ(Layerfs("eager", "pull " + ref_).code, 0);
  stdfs::path eager = CliMount("eager", "");
  std::shared_ptr<LazyImage> image = MountLazyHere();
  ASSERT_TRUE(image);
  fstest::CompareOptions opt;
  opt.mtime_before = 1750000000;  // the image's mtimes (1700000000), not the upper's
  std::string error;
  fstest::Tree want = fstest::SnapshotTree(eager, &error), got = fstest::SnapshotTree(mnt(), &error);
  want.erase("");  // the root: the container's upper directory there, the image's (none) here
  got.erase("");
  for (const auto& d : fstest::CompareTrees(want, got, opt)) ADD_FAILURE() << d;
  EXPECT_EQ(error, "");
  auto store = Store::Open(Root("lazy"));
  EXPECT_FALSE(ImageStore(*store).Resolve(ref_).ok()) << "recorded before its layers are ordinary";
}

TEST_F(LazyMountTest, AReadFetchesPartOfTheBlobAndARegistryGoneGivesEioForTheRestOnly) {
  std::shared_ptr<LazyImage> image = MountLazyHere();
  ASSERT_TRUE(image);
  ASSERT_NE(image->layer(0), nullptr);
  const Descriptor blob = image->image().layers[0];
  size_t opened = BlobGets(*registry_, blob.digest);

  EXPECT_EQ(ReadUncached(mnt() / "usr/bin/tool", 200000), Sha256Of(tool_.substr(200000, 4096)).str());
  LazyLayerStats s = image->layer(0)->stats();
  EXPECT_GT(s.fetched_bytes, 0u);
  EXPECT_LT(s.fetched_bytes, blob.size / 4) << "one 4 KiB read fetched a quarter of the blob";
  EXPECT_GT(BlobGets(*registry_, blob.digest), opened) << "no Range request for the read";
  // A copy-up fetches the whole file first.
  int fd = ::open((mnt() / "data/second").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "+", 1), 1);
  ::close(fd);
  EXPECT_EQ(Sha256Of(ReadFile(dir_.path() / "upper/data/second")), Sha256Of(second_ + "+"));

  registry_->Stop();
  EXPECT_EQ(ReadUncached(mnt() / "etc/os-release", 0), "errno " + std::to_string(EIO));
  errno = 0;
  EXPECT_LT(::open((mnt() / "etc/app.conf").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC), 0) << "copied up unfetched";
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(ReadUncached(mnt() / "data/second", 0), Sha256Of(second_.substr(0, 4096)).str());
  EXPECT_EQ(ReadUncached(mnt() / "usr/bin/tool2", 200000), Sha256Of(tool_.substr(200000, 4096)).str()) << "fetched data stops";
  EXPECT_EQ(ReadUncached(mnt() / "usr/bin/tool", 200000), Sha256Of(tool_.substr(200000, 4096)).str());
}

// Bad input: one line, exit 1, no container and no image recorded.
TEST_F(LazyMountTest, AnUnknownTagOrPlatformFailsWithOneLineAndLeavesNoContainer) {
  stdfs::path dir = dir_.path() / "mnt-bad";
  stdfs::create_directories(dir);
  std::string missing = registry_->host() + "/team/lazy:nope";
  for (const std::string& args : {"--lazy " + missing, "--lazy --platform not/a/platform/really " + ref_}) {
    ShellResult r = Layerfs("bad", "mount " + args + " " + dir.string());
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_TRUE(r.err.starts_with("layerfs: ") && r.err.find('\n') == r.err.size() - 1) << args << ": " << r.err;
  }
  EXPECT_TRUE(stdfs::is_empty(dir));
  EXPECT_TRUE(!stdfs::exists(Root("bad") / "containers") || stdfs::is_empty(Root("bad") / "containers"));
  EXPECT_EQ(Layerfs("bad", "images -q").out, "");
}

// While a lazy mount's image is not complete (here: never, one byte of the base layer's blob is
// changed in the registry, so the chunk holding it is refused), `images` lists it as partial
// with how much is local, `images -q` leaves it out, and `ps` says how far its image is; the
// container remounted by name serves it lazily again.
TEST_F(LazyMountTest, ImagesAndPsShowAPartialImageAndHowFarAlong) {
  stdfs::path largest;
  uintmax_t size = 0;
  for (const auto& e : stdfs::recursive_directory_iterator(registry_->dir()))
    if (e.is_regular_file() && e.path().filename() == "data" && e.file_size() > size) {
      size = e.file_size();
      largest = e.path();
    }
  ASSERT_GT(size, tool_.size()) << "the base layer's blob";
  std::string blob = ReadFile(largest);
  blob[blob.size() / 2] ^= 0x55;  // inside usr/bin/tool's chunks; the TOC at the end stays intact
  WriteFile(largest, blob);

  CliMount("lazy", "--lazy");
  ASSERT_FALSE(HasFailure());
  std::string log;
  for (int i = 0; i < 300 && log.find("complete " + ref_) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log.clear();
    for (const auto& c : stdfs::directory_iterator(Root("lazy") / "containers"))
      if (stdfs::exists(c.path() / "daemon.log")) log += ReadFile(c.path() / "daemon.log");
  }
  ASSERT_NE(log.find("complete " + ref_), std::string::npos) << "the background fetch did not fail\n"
                                                             << log;

  ShellResult json = Layerfs("lazy", "images --format json");
  ASSERT_EQ(json.code, 0) << json.err;
  auto row = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(row.is_object() && row.contains("Partial")) << json.out;
  EXPECT_EQ(row["Tag"], "v1");
  uint64_t local = row["Partial"]["LocalBytes"], total = row["Partial"]["TotalBytes"];
  EXPECT_GT(local, 0u);
  EXPECT_LT(local, total);
  EXPECT_LT(row["Partial"]["Percent"].get<unsigned>(), 100u);
  EXPECT_NE(Layerfs("lazy", "images").out.find("(lazy)"), std::string::npos);
  EXPECT_EQ(Layerfs("lazy", "images -q").out, "") << "not an image commands can use yet";
  std::string ps = Layerfs("lazy", "ps").out;
  EXPECT_NE(ps.find("Mounted, image " + std::to_string(row["Partial"]["Percent"].get<unsigned>()) + "% local"),
            std::string::npos)
      << ps;
  auto ps_json = nlohmann::json::parse(Layerfs("lazy", "ps --format json").out, nullptr, false);
  ASSERT_TRUE(ps_json.is_array() && ps_json.size() == 1u) << ps_json.dump();
  EXPECT_EQ(ps_json[0]["ImageLocal"]["TotalBytes"], total);
  EXPECT_EQ("sha256:" + row["ID"].get<std::string>(), ps_json[0]["ImageID"].get<std::string>().substr(0, 19));

  // Remounted by name, the container's image is pulled lazily again (its layers resume).
  stdfs::path dir = cli_mounts_.back().second;
  ASSERT_EQ(Layerfs("lazy", "umount " + dir.string()).code, 0);
  ShellResult again = Layerfs("lazy", "mount --name " + ps_json[0]["Name"].get<std::string>() + " " + dir.string());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(ReadFile(dir / "etc/os-release"), "ID=lazy\n");
  EXPECT_NE(Layerfs("lazy", "ps").out.find("% local"), std::string::npos);
}

}  // namespace
}  // namespace layerfs::testing
