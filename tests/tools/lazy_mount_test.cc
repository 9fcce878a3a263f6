// `layerfs mount --lazy` against a real docker-registry on 127.0.0.1, serving an image pushed
// by `layerfs push --estargz` (64 KiB chunks; hard links, a whiteout, xattrs and owners, a
// symlink, multi-chunk files): the lazy mount's tree equals an eager pull + mount's, entry by
// entry, before and after the background fetch, which then leaves ordinary layers and the
// image in `images`; in-process, without the background fetch, a read brings only part of
// the blob and a copy-up the whole file, and with the registry stopped a file never read gives
// EIO (a copy-up of one too) while what was fetched still reads. Faults: a chunk tampered with
// in the registry's storage is EIO through the mount and never recorded; the daemon killed mid
// background fetch (a HoldingProxy stalls it) loses nothing verified, a second owner is refused
// meanwhile, and a second mount --lazy resumes; system df and prune -a see the partial layer.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fs/mount/lazy_image_lowers.h"
#include "fs/mount/mount.h"
#include "layerstore/archive/image_load.h"
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_reader.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/lazy_layer_lock.h"
#include "tests/fs/tree_snapshot.h"
#include "tests/tools/holding_proxy.h"
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
    registry_ = LocalRegistry::Start({.access_log = true}, &error);
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
    Push(image_, ref_);
  }

  // Loads image into store "src" and pushes it as ref, eStargz with 64 KiB chunks.
  void Push(const TestImage& image, const std::string& ref) {
    stdfs::path archive = dir_.path() / "image.tar";
    WriteOciArchive(archive, {image});
    auto src = Store::Open(Root("src"));
    ASSERT_TRUE(src.ok());
    ASSERT_TRUE(LoadImages(*src, archive, {}).ok());
    ASSERT_TRUE(ImageStore(*src).Tag(image.config_digest.str(), ref).ok());
    ShellResult push = Layerfs("src", "push --estargz --estargz-chunk-size 65536 " + ref);
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

  // `layerfs mount [extra] REF DIR` into store; DIR (mnt-<store>, or `name`) is unmounted at
  // TearDown.
  stdfs::path CliMount(const std::string& store, const std::string& extra, const std::string& ref = "",
                       const std::string& name = "") {
    stdfs::path dir = dir_.path() / (name.empty() ? "mnt-" + store : name);
    stdfs::create_directories(dir);
    ShellResult r = Layerfs(store, "mount " + extra + " " + (ref.empty() ? ref_ : ref) + " " + dir.string());
    EXPECT_EQ(r.code, 0) << r.err;
    if (r.code == 0) cli_mounts_.emplace_back(store, dir);
    return dir;
  }

  // The image as the registry serves it (push --estargz converted its layers): layer
  // descriptors and diff_ids.
  static Image Pushed(const std::string& ref) {
    auto r = ParseReference(ref);
    auto ro = MakeRegistryOptions(r->domain, {});
    EXPECT_TRUE(r.ok() && ro.ok());
    RegistryClient client(*ro);
    auto remote = FetchRemoteManifest(client, *r, Platform{});
    EXPECT_TRUE(remote.ok()) << remote.status().message();
    if (!remote.ok()) return Image();
    Status st = FetchRemoteConfig(client, &*remote);
    EXPECT_TRUE(st.ok()) << st.message();
    return remote->image;
  }

  // The "Partial Layers" row of `system df --format json`.
  nlohmann::json PartialLayersRow(const std::string& store) {
    ShellResult df = Layerfs(store, "system df --format json");
    EXPECT_EQ(df.code, 0) << df.err;
    std::istringstream lines(df.out);
    for (std::string line; std::getline(lines, line);) {
      auto row = nlohmann::json::parse(line, nullptr, false);
      if (row.is_object() && row.value("Type", "") == "Partial Layers") return row;
    }
    ADD_FAILURE() << "no Partial Layers row: " << df.out;
    return nlohmann::json();
  }

  stdfs::path RegistryBlobFile(const Digest& d) const {
    return registry_->dir() / "storage/docker/registry/v2/blobs/sha256" / d.hex().substr(0, 2) / d.hex() / "data";
  }

  // Every daemon.log of the store's containers.
  std::string DaemonLogs(const std::string& store) {
    std::string log;
    for (const auto& c : stdfs::directory_iterator(Root(store) / "containers"))
      if (stdfs::exists(c.path() / "daemon.log")) log += ReadFile(c.path() / "daemon.log");
    return log;
  }

  // Waits up to 30 s for `what` to hold.
  static bool WaitFor(const std::function<bool()>& what) {
    for (int i = 0; i < 300; ++i) {
      if (what()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
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
  ASSERT_TRUE(WaitFor([&] { return ImageStore(*store).Resolve(ref_).ok(); })) << "the image did not appear within 30 s";
  auto pulled = ImageStore(*store).Resolve(ref_);
  for (const Digest& d : pulled->diff_ids) {
    EXPECT_TRUE(LayerStore(*store).Has(d)) << d.str();
    EXPECT_FALSE(stdfs::exists(store->lazy_layer_dir(d))) << d.str();
  }
  for (const auto& d : fstest::CompareTrees(want, fstest::SnapshotTree(lazy, &error), opt)) ADD_FAILURE() << d;
  std::string log = DaemonLogs("lazy");
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
  size_t opened = registry_->BlobGets("team/lazy", blob.digest.str());

  EXPECT_EQ(ReadUncached(mnt() / "usr/bin/tool", 200000), Sha256Of(tool_.substr(200000, 4096)).str());
  LazyLayerStats s = image->layer(0)->stats();
  EXPECT_GT(s.fetched_bytes, 0u);
  EXPECT_LT(s.fetched_bytes, blob.size / 4) << "one 4 KiB read fetched a quarter of the blob";
  EXPECT_GT(registry_->BlobGets("team/lazy", blob.digest.str()), opened) << "no Range request for the read";
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

// A chunk of usr/bin/tool changed in the registry's stored blob (inside its gzip member; the
// TOC intact): the background fetch fails on it, without installing the layer or recording
// the image; a read of it through the mount is EIO and the daemon's log names the chunk; the
// rest of the file and the other files read right; nothing of it reaches the tree. Once the
// mount is gone nobody owns the layer: prune -a keeps it while the container lives, then
// removes it.
TEST_F(LazyMountTest, ATamperedChunkIsEioThroughTheMountAndTheImageIsNeverRecorded) {
  Image pushed = Pushed(ref_);
  ASSERT_EQ(pushed.layers.size(), 2u);
  const Descriptor base = pushed.layers[0];
  std::string stored = ReadFile(RegistryBlobFile(base.digest));
  ASSERT_EQ(stored.size(), base.size) << "the registry keeps the blob as a file";
  std::string_view blob = stored;
  auto toc_offset = ParseEstargzFooter(blob.substr(blob.size() - kEstargzFooterSize));
  ASSERT_TRUE(toc_offset.ok());
  auto toc = ReadEstargzToc(blob.substr(*toc_offset, blob.size() - kEstargzFooterSize - *toc_offset), *toc_offset, Digest());
  ASSERT_TRUE(toc.ok());
  auto chunks = EstargzChunks(*toc, *toc_offset);
  ASSERT_GT(chunks["usr/bin/tool"].size(), 3u);
  const EstargzChunk bad = chunks["usr/bin/tool"][1];
  stored[(bad.offset + bad.end) / 2] ^= 0x55;
  WriteFile(RegistryBlobFile(base.digest), stored);

  stdfs::path mnt = CliMount("lazy", "--lazy");
  ASSERT_FALSE(HasFailure());
  const std::string refused = "usr/bin/tool: refused: eStargz chunk at " + std::to_string(bad.offset) + ":";
  ASSERT_TRUE(WaitFor([&] { return DaemonLogs("lazy").find("layerfs: complete " + ref_ + ": ") != std::string::npos; }))
      << DaemonLogs("lazy");
  EXPECT_NE(DaemonLogs("lazy").find("layerfs: complete " + ref_ + ": layer " + pushed.diff_ids[0].str() + ": " + refused),
            std::string::npos)
      << DaemonLogs("lazy");
  EXPECT_EQ(DaemonLogs("lazy").find("layerfs: layer "), std::string::npos) << "the refusal logged twice";
  size_t before = DaemonLogs("lazy").size();
  EXPECT_EQ(ReadUncached(mnt / "usr/bin/tool", bad.file_offset + 100), "errno " + std::to_string(EIO));
  std::string read_log = DaemonLogs("lazy").substr(before);
  // One line per refused read, naming the chunk (the kernel may retry a failed read once).
  std::istringstream lines(read_log);
  int refusals = 0;
  for (std::string line; std::getline(lines, line); ++refusals)
    EXPECT_TRUE(line.starts_with("layerfs: read of /usr/bin/tool: ") && line.find(refused) != std::string::npos) << line;
  EXPECT_GE(refusals, 1);
  EXPECT_EQ(ReadUncached(mnt / "usr/bin/tool", 0), Sha256Of(tool_.substr(0, 4096)).str());
  constexpr off_t kChunk3 = 3 << 16;
  EXPECT_EQ(ReadUncached(mnt / "usr/bin/tool", kChunk3), Sha256Of(tool_.substr(kChunk3, 4096)).str());
  EXPECT_EQ(ReadUncached(mnt / "data/second", 200000), Sha256Of(second_.substr(200000, 4096)).str());
  EXPECT_EQ(ReadFile(mnt / "etc/app.conf"), "port=1\n");

  auto store = Store::Open(Root("lazy"));
  ASSERT_TRUE(store.ok());
  stdfs::path dir = store->lazy_layer_dir(pushed.diff_ids[0]);
  std::string tree = ReadFile(dir / "tree/usr/bin/tool");
  ASSERT_EQ(tree.size(), tool_.size());
  EXPECT_EQ(tree.substr(bad.file_offset, bad.length), std::string(bad.length, '\0')) << "refused bytes reached the tree";
  EXPECT_EQ(tree.substr(0, 65536), tool_.substr(0, 65536));
  EXPECT_FALSE(LayerStore(*store).Has(pushed.diff_ids[0]));
  EXPECT_FALSE(stdfs::exists(store->blob_path(base.digest)));
  EXPECT_EQ(Layerfs("lazy", "images -q").out, "") << "recorded with a refused chunk";

  // Unmounted, the container keeps the layer (its remount resumes it); removed, prune -a takes it.
  ASSERT_EQ(Layerfs("lazy", "umount " + mnt.string()).code, 0);
  cli_mounts_.clear();
  nlohmann::json row = PartialLayersRow("lazy");
  EXPECT_EQ(row["TotalCount"], "1") << row.dump();
  EXPECT_EQ(row["Active"], "0") << row.dump();
  EXPECT_EQ(row["Reclaimable"], "0B (0%)") << row.dump();
  ShellResult prune = Layerfs("lazy", "system prune -a -f");
  EXPECT_EQ(prune.code, 0) << prune.err;
  EXPECT_EQ(prune.out.find("Deleted Partial Layers"), std::string::npos) << prune.out;
  EXPECT_TRUE(stdfs::exists(dir));
  std::vector<ContainerRecord> containers = ContainerStore(*store).List();
  ASSERT_EQ(containers.size(), 1u);
  ASSERT_EQ(Layerfs("lazy", "rm " + containers[0].name).code, 0);
  row = PartialLayersRow("lazy");
  EXPECT_TRUE(row["Reclaimable"].get<std::string>().ends_with(" (100%)")) << row.dump();
  prune = Layerfs("lazy", "system prune -a -f");
  EXPECT_EQ(prune.code, 0) << prune.err;
  EXPECT_NE(prune.out.find("Deleted Partial Layers:\n" + pushed.diff_ids[0].str() + "\n"), std::string::npos) << prune.out;
  EXPECT_FALSE(stdfs::exists(dir));
}

// The daemon killed while its background fetch is half way (a proxy holds one of its Range
// requests; the other has arrived): meanwhile a second owner is refused in one line and
// prune -a keeps the layer; after the kill the layer stays in lazy/ with only verified chunks
// in its journal, the dead mount unmounts, and a second mount --lazy resumes from the journal
// (fetching less than the blob) and completes the image.
TEST_F(LazyMountTest, DaemonKilledMidFetchLosesNothingVerifiedAndASecondMountResumes) {
  // Complete fetches in requests of background_request bytes: one and a half of them make a
  // whole one, which the proxy holds, and half a one, which goes through.
  const uint64_t batch = LazyLayerOptions().background_request;
  const std::string big = RandomBytes(batch + batch / 2, 11);
  TarBuilder b;
  b.Dir("opt/").File("opt/big", big).File("opt/small", "small\n");
  const std::string direct = registry_->host() + "/team/big:v1";
  Push(MakeImage({GzipLayer(b)}, {"v1"}), direct);
  Image pushed = Pushed(direct);
  ASSERT_EQ(pushed.layers.size(), 1u);
  const Digest diff_id = pushed.diff_ids[0];
  HoldingProxy proxy(registry_->port(), batch * 3 / 4);
  const std::string ref = proxy.host() + "/team/big:v1";
  stdfs::path mnt = CliMount("lazy", "--lazy", ref);
  ASSERT_FALSE(HasFailure());
  auto store = Store::Open(Root("lazy"));
  ASSERT_TRUE(store.ok());
  const stdfs::path dir = store->lazy_layer_dir(diff_id);
  auto journaled = [&] {
    std::error_code ec;
    uint64_t bytes = stdfs::file_size(dir / "chunks", ec);
    return ec ? 0 : bytes / 4;
  };
  ASSERT_TRUE(WaitFor([&] { return proxy.held() > 0 && journaled() > 0; })) << DaemonLogs("lazy");
  std::vector<ContainerRecord> containers = ContainerStore(*store).List();
  ASSERT_EQ(containers.size(), 1u);
  const pid_t daemon = containers[0].daemon_pid;

  stdfs::create_directories(dir_.path() / "mnt-second");
  ShellResult second = Layerfs("lazy", "mount --lazy " + ref + " " + (dir_.path() / "mnt-second").string());
  EXPECT_EQ(second.code, 1);
  EXPECT_TRUE(second.err.starts_with("layerfs: ") && second.err.find('\n') == second.err.size() - 1) << second.err;
  EXPECT_NE(second.err.find("layer " + diff_id.str() + " is being pulled lazily by another process (pid " +
                            std::to_string(daemon) + ")"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(ContainerStore(*store).List().size(), 1u) << "the refused mount left a container";
  nlohmann::json row = PartialLayersRow("lazy");
  EXPECT_EQ(row["TotalCount"], "1") << row.dump();
  EXPECT_EQ(row["Active"], "1") << row.dump();
  ShellResult prune = Layerfs("lazy", "system prune -a -f");
  EXPECT_EQ(prune.code, 0) << prune.err;
  EXPECT_EQ(prune.out.find("Deleted Partial Layers"), std::string::npos) << prune.out;
  EXPECT_TRUE(stdfs::exists(dir));

  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !LazyLayerLock::Held(dir); })) << "the dead daemon still owns the layer";
  ShellResult umount = Layerfs("lazy", "umount " + mnt.string());
  EXPECT_EQ(umount.code, 0) << umount.err;
  EXPECT_EQ(ReadFile("/proc/mounts").find(mnt.string()), std::string::npos) << "the dead mount stays";
  cli_mounts_.clear();
  EXPECT_EQ(PartialLayersRow("lazy")["Active"], "0");

  // Opened as after a reboot, every journaled chunk is checked again (its member against its
  // digest, its data in the tree): all of them hold.
  const uint64_t kept = journaled();
  WriteFile(dir / "chunks.boot", "a boot before this one\n");
  {
    auto again = LazyImage::Pull(*store, *ParseReference(direct), LazyPullOptions(), {});
    ASSERT_TRUE(again.ok()) << again.status().message();
    LazyLayerStats s = (*again)->layer(0)->stats();
    EXPECT_EQ(s.verified_chunks, kept) << "a journaled chunk failed its check";
    EXPECT_LT(s.verified_chunks, s.chunks) << "killed after the end";
    EXPECT_EQ(s.requests, 0u);
  }

  proxy.StopHolding();
  stdfs::path resumed = CliMount("lazy", "--lazy", ref, "mnt-resumed");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitFor([&] { return ImageStore(*store).Resolve(ref).ok(); })) << DaemonLogs("lazy");
  EXPECT_TRUE(LayerStore(*store).Has(diff_id));
  EXPECT_FALSE(stdfs::exists(dir));
  std::string log = DaemonLogs("lazy");
  size_t at = log.find(ref + " complete: ");
  ASSERT_NE(at, std::string::npos) << log;
  uint64_t fetched = 0;
  std::string_view bytes = std::string_view(log).substr(log.find(" chunks, ", at) + 9);
  ASSERT_EQ(std::from_chars(bytes.data(), bytes.data() + bytes.size(), fetched).ec, std::errc()) << log;
  EXPECT_GT(fetched, 0u);
  EXPECT_LT(fetched, pushed.layers[0].size) << "the resumed mount fetched the whole blob again";
  EXPECT_EQ(Sha256Of(ReadFile(resumed / "opt/big")), Sha256Of(big));
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

  CliMount("lazy", "--lazy --insecure-registry " + registry_->host());  // one value: REF and DIR stay positional
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitFor([&] { return DaemonLogs("lazy").find("complete " + ref_) != std::string::npos; }))
      << "the background fetch did not fail\n"
      << DaemonLogs("lazy");

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
