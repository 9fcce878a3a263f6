// `layerfs pull/push/login/logout` against a real registry (Debian's docker-registry on
// loopback, with and without htpasswd auth), cross-checked with skopeo, and the faults a user
// meets (registry down, unknown manifest, corrupt blob, connection cut, disk full) served by the
// test's own loopback server. Every failure: one line, exit 1, the store as it was.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/registry/image_push.h"
#include "layerstore/registry/registry_auth.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/image_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/tools/loopback_http_server.h"
#include "tests/tools/registry_fixture.h"
#include "tests/tools/shell_command.h"
#include "tests/tools/test_images.h"  // with tests/layerstore/test_util.h: Compression, ReadFile

extern char** environ;

namespace layerfs::testing {
namespace {

namespace stdfs = std::filesystem;

size_t CountLines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Every path under the store with its size (files) or type, ignoring tmp/ and the lock file.
std::map<std::string, std::string> StoreListing(const stdfs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = stdfs::recursive_directory_iterator(root, ec); it != stdfs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string rel = stdfs::relative(it->path(), root).string();
    if (rel == "lock" || rel == "tmp" || rel.starts_with("tmp/")) {
      if (rel == "tmp") it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    ::lstat(it->path().c_str(), &st);
    out[rel] = S_ISREG(st.st_mode) ? std::to_string(st.st_size) + ":" + (rel == "index.json" ? ReadFile(it->path()) : "")
                                   : std::to_string(st.st_mode & S_IFMT);
  }
  return out;
}

class RegistryCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LocalRegistry::Available()) GTEST_SKIP() << "docker-registry or htpasswd not installed";
    char tmpl[] = "/tmp/layerfs-regtest-XXXXXX";
    work_ = ::mkdtemp(tmpl);
    home_ = work_ / "home";
    stdfs::create_directories(home_);
  }
  void TearDown() override {
    if (!tmpfs_.empty()) ::umount2(tmpfs_.c_str(), MNT_DETACH);
    registry_.reset();
    std::error_code ec;
    if (!work_.empty()) stdfs::remove_all(work_, ec);
  }

  void StartRegistry(bool htpasswd = false) {
    std::string error;
    LocalRegistry::Options o;
    o.htpasswd = htpasswd;
    registry_ = LocalRegistry::Start(o, &error);
    ASSERT_TRUE(registry_) << error;
  }

  stdfs::path Root(const std::string& name) { return work_ / name; }

  // Runs the layerfs binary with HOME pointing at the test's own home (no real credentials).
  ShellResult Layerfs(const stdfs::path& root, const std::string& args, const std::string& stdin_text = "") {
    std::string cmd = "env -u DOCKER_CONFIG HOME=" + ShellQuote(home_.string()) + " " + ShellQuote(LAYERFS_BINARY) +
                      " --root " + ShellQuote(root.string()) + " " + args;
    if (!stdin_text.empty()) cmd = "printf '%s\\n' " + ShellQuote(stdin_text) + " | " + cmd;
    return RunShellCommand(cmd);
  }

  int Skopeo(const std::string& args, std::string* out = nullptr) {
    ShellResult r = RunShellCommand("env HOME=" + ShellQuote(home_.string()) + " skopeo " + args);
    if (out) *out = r.out;
    if (r.code != 0) ADD_FAILURE() << "skopeo " << args << ": " << r.err;
    return r.code;
  }

  // Loads the image into a store (library call) and tags it `ref`.
  void LoadAndTag(const stdfs::path& root, const TestImage& img, const std::string& ref) {
    stdfs::path layout = work_ / ("image-" + img.manifest_digest.short_id() + ".tar");
    WriteOciArchive(layout, {img});
    auto store = Store::Open(root);
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto loaded = LoadImages(*store, layout, {});
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    ASSERT_TRUE(ImageStore(*store).Tag(img.config_digest.str(), ref).ok());
  }

  Image Resolve(const stdfs::path& root, const std::string& ref) {
    auto store = Store::Open(root);
    EXPECT_TRUE(store.ok());
    auto img = ImageStore(*store).Resolve(ref);
    EXPECT_TRUE(img.ok()) << ref << ": " << img.status().message();
    return img.ok() ? *img : Image();
  }

  // Serves `img` as team/app:v1 from the test's own server with a fault on one blob.
  std::unique_ptr<LoopbackHttpServer> Serve(FakeRegistry* fake, const TestImage& img) {
    fake->repo = "team/app";
    fake->manifests["v1"] = img.manifest;
    fake->manifests[img.manifest_digest.str()] = img.manifest;
    fake->blobs[img.config_digest.str()] = img.config;
    for (const TestLayer& l : img.layers) fake->blobs[l.digest.str()] = l.blob;
    return std::make_unique<LoopbackHttpServer>([fake](const auto& r) { return fake->Handle(r); });
  }

  // A failed pull: exit 1, exactly one line on stderr, the store exactly as before.
  void ExpectCleanFailure(const stdfs::path& root, const std::string& args, const std::string& words) {
    ASSERT_TRUE(Store::Open(root).ok());
    auto before = StoreListing(root);
    ShellResult r = Layerfs(root, args);
    std::printf("    %s", r.err.c_str());  // the line a user sees, for the test log
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_EQ(CountLines(r.err), 1u) << r.err;
    EXPECT_TRUE(r.err.starts_with("layerfs: ")) << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
    EXPECT_EQ(StoreListing(root), before) << r.err;
    EXPECT_TRUE(stdfs::is_empty(root / "tmp")) << "litter left in tmp/";
  }

  stdfs::path work_;
  stdfs::path home_;
  stdfs::path tmpfs_;
  std::unique_ptr<LocalRegistry> registry_;
};

TestImage ThreeLayerImage() {
  TestLayer base = MakeLayer({{"bin/", ""}, {"bin/sh", "#!/bin/sh\necho hi\n", "", 0755}, {"etc/", ""}, {"etc/os-release", "ID=test\n"}, {"lib", "", "bin"}});
  TestLayer mid = MakeRandomLayer("data/blob.bin", 400000, 7, Compression::kGzip);
  TestLayer top = MakeLayer({{"etc/app.conf", "port=1\n"}, {"bin/.wh.sh", ""}});
  return MakeImage({base, mid, top}, {"v1"});
}

TEST_F(RegistryCliTest, PushThenPullIntoAnEmptyStoreGivesTheSameImage) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  std::string ref = registry_->host() + "/team/app:v1";
  LoadAndTag(Root("a"), img, ref);

  ShellResult push = Layerfs(Root("a"), "push " + ref);
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_NE(push.out.find("The push refers to repository [" + registry_->host() + "/team/app]"), std::string::npos);
  EXPECT_EQ(Count(push.out, ": Pushed\n"), 3u) << push.out;
  EXPECT_NE(push.out.find(img.layers[0].diff_id.short_id() + ": Preparing"), std::string::npos) << push.out;
  EXPECT_NE(push.out.find("v1: digest: " + img.manifest_digest.str() + " size: " + std::to_string(img.manifest.size())),
            std::string::npos)
      << push.out;

  ShellResult pull = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_TRUE(pull.out.starts_with("v1: Pulling from team/app\n")) << pull.out;
  for (const TestLayer& l : img.layers) {
    std::string id = l.digest.short_id();
    for (const char* s : {"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
                          "Pull complete"})
      EXPECT_NE(pull.out.find(id + ": " + s + "\n"), std::string::npos) << s << "\n"
                                                                        << pull.out;
    EXPECT_LT(pull.out.find(id + ": Pulling fs layer"), pull.out.find(id + ": Pull complete"));
  }
  EXPECT_NE(pull.out.find("Digest: " + img.manifest_digest.str() + "\n"), std::string::npos);
  EXPECT_NE(pull.out.find("Status: Downloaded newer image for " + ref + "\n"), std::string::npos);
  EXPECT_TRUE(pull.out.ends_with(ref + "\n")) << pull.out;

  Image got = Resolve(Root("b"), ref);
  EXPECT_EQ(got.manifest_digest, img.manifest_digest);
  std::vector<Digest> want;
  for (const TestLayer& l : img.layers) want.push_back(l.diff_id);
  EXPECT_EQ(got.diff_ids, want);
  auto store = Store::Open(Root("b"));
  LayerStore layers(*store);
  for (const Digest& d : want) EXPECT_TRUE(layers.Has(d));
  EXPECT_EQ(ReadFile(store->layer_tree(want[0]) / "etc/os-release"), "ID=test\n");
  EXPECT_EQ(stdfs::file_size(store->layer_tree(want[1]) / "data/blob.bin"), 400000u);
  EXPECT_TRUE(stdfs::is_empty(Root("b") / "tmp"));

  // Again: nothing fetched.
  ShellResult again = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("Status: Image is up to date for " + ref), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("Downloading"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("Pull complete"), std::string::npos) << again.out;
}

TEST_F(RegistryCliTest, DefaultTagQuietAndSharedLayers) {
  StartRegistry();
  TestImage a = ThreeLayerImage();
  TestImage b = MakeImage({a.layers[0], MakeLayer({{"srv/", ""}, {"srv/b", "b\n"}})}, {"v1"});
  LoadAndTag(Root("a"), a, registry_->host() + "/team/app:latest");
  LoadAndTag(Root("a"), b, registry_->host() + "/team/other:latest");
  ASSERT_EQ(Layerfs(Root("a"), "push " + registry_->host() + "/team/app").code, 0);

  // Same registry, other repository: the shared base layer is mounted, not uploaded.
  ShellResult push = Layerfs(Root("a"), "push " + registry_->host() + "/team/other");
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_TRUE(push.out.starts_with("Using default tag: latest\n")) << push.out;
  EXPECT_NE(push.out.find(a.layers[0].diff_id.short_id() + ": Mounted from team/app\n"), std::string::npos) << push.out;
  EXPECT_EQ(Count(push.out, ": Pushed\n"), 1u) << push.out;
  ShellResult repush = Layerfs(Root("a"), "push " + registry_->host() + "/team/other");
  EXPECT_EQ(Count(repush.out, ": Layer already exists\n"), 2u) << repush.out;

  ShellResult quiet = Layerfs(Root("b"), "pull -q " + registry_->host() + "/team/app");
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.out, registry_->host() + "/team/app:latest\n");
  ShellResult shared = Layerfs(Root("b"), "pull " + registry_->host() + "/team/other");
  ASSERT_EQ(shared.code, 0) << shared.err;
  EXPECT_TRUE(shared.out.starts_with("Using default tag: latest\nlatest: Pulling from team/other\n")) << shared.out;
  EXPECT_NE(shared.out.find(a.layers[0].digest.short_id() + ": Already exists\n"), std::string::npos) << shared.out;
  EXPECT_NE(shared.out.find(b.layers[1].digest.short_id() + ": Pull complete\n"), std::string::npos) << shared.out;
  EXPECT_EQ(Resolve(Root("b"), registry_->host() + "/team/other").manifest_digest, b.manifest_digest);
}

TEST_F(RegistryCliTest, RepairsAMissingBlobOrLayerFromWhatIsLeft) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  std::string ref = registry_->host() + "/team/app:v1";
  LoadAndTag(Root("a"), img, ref);
  ASSERT_EQ(Layerfs(Root("a"), "push " + ref).code, 0);
  ASSERT_EQ(Layerfs(Root("b"), "pull " + ref).code, 0);
  auto store = Store::Open(Root("b"));
  ASSERT_TRUE(BlobStore(*store).Remove(img.layers[0].digest).ok());    // layer kept, blob gone
  ASSERT_TRUE(LayerStore(*store).Remove(img.layers[1].diff_id).ok());  // blob kept, layer gone
  ShellResult pull = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_NE(pull.out.find(img.layers[0].digest.short_id() + ": Download complete"), std::string::npos) << pull.out;
  EXPECT_EQ(pull.out.find(img.layers[1].digest.short_id() + ": Downloading"), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find(img.layers[1].digest.short_id() + ": Extracting"), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find(img.layers[2].digest.short_id() + ": Already exists"), std::string::npos) << pull.out;
  EXPECT_TRUE(BlobStore(*store).Has(img.layers[0].digest));
  EXPECT_TRUE(LayerStore(*store).Has(img.layers[1].diff_id));
  EXPECT_NE(Layerfs(Root("b"), "pull " + ref).out.find("Image is up to date"), std::string::npos);
}

// On a terminal (script(1) provides one) each layer line is rewritten in place with a bar.
TEST_F(RegistryCliTest, TerminalGetsLiveProgressBars) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) not installed";
  TestImage img = MakeImage({MakeRandomLayer("r.bin", 2000000, 17, Compression::kGzip)}, {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  std::string inner = std::string(LAYERFS_BINARY) + " --root " + Root("a").string() + " pull " + server->host() +
                      "/team/app:v1";
  ShellResult r = RunShellCommand("script -qec " + ShellQuote(inner) + " /dev/null");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::string id = img.layers[0].digest.short_id();
  EXPECT_NE(r.out.find("\x1b[1A\r\x1b[2K" + id + ": Downloading ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": Downloading [==================================================]"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(id + ": Pull complete"), std::string::npos);
  EXPECT_EQ(Resolve(Root("a"), server->host() + "/team/app:v1").manifest_digest, img.manifest_digest);
}

TEST_F(RegistryCliTest, ChunkedUploadRoundTrips) {
  StartRegistry();
  TestImage img = MakeImage({MakeRandomLayer("big.bin", 300000, 3, Compression::kGzip)}, {"v1"});
  std::string ref = registry_->host() + "/team/chunky:v1";
  LoadAndTag(Root("a"), img, ref);
  auto store = Store::Open(Root("a"));
  PushOptions o;
  o.chunk_size = 64 << 10;  // five PATCH requests and a final PUT
  auto parsed = ParseReference(ref);
  auto pushed = PushImage(*store, *parsed, o, {});
  ASSERT_TRUE(pushed.ok()) << pushed.status().message();
  EXPECT_EQ(pushed->manifest_digest, img.manifest_digest);
  ShellResult pull = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_EQ(Resolve(Root("b"), ref).diff_ids, std::vector<Digest>{img.layers[0].diff_id});
}

TEST_F(RegistryCliTest, SkopeoPushesLayerfsPullsAndTheOtherWayRound) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  stdfs::path layout = work_ / "layout";
  WriteOciLayout(layout, {img});
  std::string ref = registry_->host() + "/from/skopeo:v1";
  ASSERT_EQ(Skopeo("copy --dest-tls-verify=false oci:" + layout.string() + ":v1 docker://" + ref), 0);
  ShellResult pull = Layerfs(Root("a"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_EQ(Resolve(Root("a"), ref).manifest_digest, img.manifest_digest);

  std::string back = registry_->host() + "/from/layerfs:v2";
  ASSERT_TRUE(ImageStore(*Store::Open(Root("a"))).Tag(ref, back).ok());
  ASSERT_EQ(Layerfs(Root("a"), "push " + back).code, 0);
  std::string raw;
  ASSERT_EQ(Skopeo("inspect --raw --tls-verify=false docker://" + back, &raw), 0);
  EXPECT_EQ(Sha256Of(raw), img.manifest_digest);
  ASSERT_EQ(Skopeo("copy --src-tls-verify=false docker://" + back + " oci:" + (work_ / "out").string() + ":x"), 0);
}

TEST_F(RegistryCliTest, MultiPlatformIndexPicksThePlatform) {
  StartRegistry();
  TestImage amd = MakeImage({MakeLayer({{"amd64", "x86\n"}})}, {});
  TestImage arm = MakeImage({MakeLayer({{"arm64", "arm\n"}})}, {});
  stdfs::path layout = work_ / "multi";
  WriteMultiPlatformLayout(layout, amd, arm, "v1");
  std::string ref = registry_->host() + "/multi/app:v1";
  ASSERT_EQ(Skopeo("copy --all --dest-tls-verify=false oci:" + layout.string() + ":v1 docker://" + ref), 0);
  ShellResult a = Layerfs(Root("a"), "pull " + ref);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(Resolve(Root("a"), ref).manifest_digest, amd.manifest_digest);
  ShellResult b = Layerfs(Root("b"), "pull --platform linux/arm64 " + ref);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(Resolve(Root("b"), ref).manifest_digest, arm.manifest_digest);
  ExpectCleanFailure(Root("c"), "pull --platform linux/s390x " + ref, "no manifest for platform linux/s390x");
}

TEST_F(RegistryCliTest, BasicAuthThroughLoginAndThroughDockerConfig) {
  StartRegistry(/*htpasswd=*/true);
  TestImage img = ThreeLayerImage();
  std::string host = registry_->host();
  std::string ref = host + "/secure/app:v1";
  LoadAndTag(Root("a"), img, ref);

  ShellResult denied = Layerfs(Root("a"), "push " + ref);
  EXPECT_EQ(denied.code, 1);
  EXPECT_NE(denied.err.find("layerfs login " + host), std::string::npos) << denied.err;
  ExpectCleanFailure(Root("b"), "pull " + ref, "unauthorized");

  ShellResult bad = Layerfs(Root("a"), "login -u tester -p wrong " + host);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("incorrect username or password"), std::string::npos) << bad.err;
  EXPECT_FALSE(stdfs::exists(home_ / ".docker/config.json"));

  ShellResult login = Layerfs(Root("a"), "login -u tester --password-stdin " + host, registry_->options().password);
  ASSERT_EQ(login.code, 0) << login.err;
  EXPECT_EQ(login.out, "Login Succeeded\n");
  EXPECT_NE(ReadFile(home_ / ".docker/config.json").find(Base64Encode("tester:" + registry_->options().password)),
            std::string::npos);
  ASSERT_EQ(Layerfs(Root("a"), "push " + ref).code, 0);
  ShellResult pull = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_EQ(Resolve(Root("b"), ref).manifest_digest, img.manifest_digest);

  ShellResult logout = Layerfs(Root("a"), "logout " + host);
  EXPECT_EQ(logout.out, "Removing login credentials for " + host + "\n");
  ExpectCleanFailure(Root("c"), "pull " + ref, "unauthorized");

  // Credentials written the way `docker login` writes them work too.
  std::ofstream(home_ / ".docker/config.json")
      << R"({"auths":{")" << host << R"(":{"auth":")" << Base64Encode("tester:" + registry_->options().password)
      << R"("}}})";
  ShellResult with_config = Layerfs(Root("c"), "pull " + ref);
  ASSERT_EQ(with_config.code, 0) << with_config.err;
}

TEST_F(RegistryCliTest, RegistryDownAndUnknownManifestFailCleanly) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  LoadAndTag(Root("a"), img, registry_->host() + "/team/app:v1");
  ASSERT_EQ(Layerfs(Root("a"), "push " + registry_->host() + "/team/app:v1").code, 0);
  ExpectCleanFailure(Root("a"), "pull " + registry_->host() + "/team/app:nope", "manifest unknown");
  ExpectCleanFailure(Root("a"), "pull " + registry_->host() + "/team/missing:v1", "unknown");
  int port = FreeLoopbackPort();
  ExpectCleanFailure(Root("a"), "pull 127.0.0.1:" + std::to_string(port) + "/team/app:v1", "Failed to connect");
}

TEST_F(RegistryCliTest, CorruptBlobFailsCleanly) {
  TestImage img = MakeImage({MakeRandomLayer("r.bin", 200000, 11, Compression::kGzip)}, {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  fake.SetFault(img.layers[0].digest.str(), FakeRegistry::Fault::kCorrupt);
  ASSERT_TRUE(Store::Open(Root("a")).ok());
  ExpectCleanFailure(Root("a"), "pull " + server->host() + "/team/app:v1", "digest mismatch");
}

TEST_F(RegistryCliTest, CutConnectionResumesWithRange) {
  TestImage img = MakeImage({MakeRandomLayer("r.bin", 600000, 12, Compression::kGzip)}, {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  fake.SetFault(img.layers[0].digest.str(), FakeRegistry::Fault::kCutOnce);
  ShellResult r = Layerfs(Root("a"), "pull " + server->host() + "/team/app:v1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fake.cuts, 1);
  EXPECT_EQ(Resolve(Root("a"), server->host() + "/team/app:v1").manifest_digest, img.manifest_digest);
  auto store = Store::Open(Root("a"));
  EXPECT_EQ(stdfs::file_size(store->layer_tree(img.layers[0].diff_id) / "r.bin"), 600000u);
}

TEST_F(RegistryCliTest, ConnectionCutEveryTimeFailsCleanly) {
  TestImage img = MakeImage({MakeRandomLayer("r.bin", 600000, 13, Compression::kGzip)}, {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  fake.SetFault(img.layers[0].digest.str(), FakeRegistry::Fault::kCutAlways);
  ASSERT_TRUE(Store::Open(Root("a")).ok());
  ExpectCleanFailure(Root("a"), "pull " + server->host() + "/team/app:v1", "after 5 attempts");
}

TEST_F(RegistryCliTest, FailedPullKeepsCompletedLayersForTheNextPull) {
  TestImage img = MakeImage({MakeLayer({{"good", "good\n"}}), MakeRandomLayer("r.bin", 300000, 14, Compression::kGzip)},
                            {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  fake.SetFault(img.layers[1].digest.str(), FakeRegistry::Fault::kCorrupt);
  std::string ref = server->host() + "/team/app:v1";
  ShellResult bad = Layerfs(Root("a"), "pull --max-concurrent-downloads 1 " + ref);
  EXPECT_EQ(bad.code, 1);
  auto store = Store::Open(Root("a"));
  EXPECT_FALSE(ImageStore(*store).Resolve(ref).ok());           // no image, no tag
  EXPECT_FALSE(LayerStore(*store).Has(img.layers[1].diff_id));  // no half layer
  EXPECT_FALSE(BlobStore(*store).Has(img.layers[1].digest));
  EXPECT_TRUE(LayerStore(*store).Has(img.layers[0].diff_id));  // verified, kept
  EXPECT_TRUE(stdfs::is_empty(Root("a") / "tmp"));
  fake.SetFault(FakeRegistry::Fault::kNone);
  ShellResult good = Layerfs(Root("a"), "pull " + ref);
  ASSERT_EQ(good.code, 0) << good.err;
  EXPECT_NE(good.out.find(img.layers[0].digest.short_id() + ": Already exists"), std::string::npos) << good.out;
  EXPECT_NE(good.out.find(img.layers[1].digest.short_id() + ": Pull complete"), std::string::npos) << good.out;
}

TEST_F(RegistryCliTest, PullKilledHalfWayLeavesNoImageAndTheNextPullReusesLayers) {
  TestImage img = MakeImage({MakeLayer({{"first", "1\n"}}), MakeRandomLayer("r.bin", 300000, 16, Compression::kGzip)},
                            {"v1"});
  FakeRegistry fake;
  std::atomic<bool> reached{false}, release{false};
  std::string held = img.layers[1].digest.str();
  fake.SetBeforeBlob([&](const std::string& digest) {
    if (digest != held || release) return;
    reached = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  auto server = Serve(&fake, img);  // after what its thread uses: it is joined first
  std::string ref = server->host() + "/team/app:v1";
  std::string root = Root("a").string();
  const char* argv[] = {LAYERFS_BINARY, "--root", root.c_str(), "pull", "--max-concurrent-downloads", "1",
                        ref.c_str(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, LAYERFS_BINARY, &fa, nullptr, const_cast<char**>(argv), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 1000 && !reached; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(reached);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  release = true;

  auto store = Store::Open(Root("a"));  // sweeps the dead pull's tmp/ litter
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(ImageStore(*store).Resolve(ref).ok());
  EXPECT_TRUE(LayerStore(*store).Has(img.layers[0].diff_id));
  EXPECT_FALSE(LayerStore(*store).Has(img.layers[1].diff_id));
  EXPECT_TRUE(stdfs::is_empty(Root("a") / "tmp"));
  ShellResult again = Layerfs(Root("a"), "pull " + ref);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find(img.layers[0].digest.short_id() + ": Already exists"), std::string::npos) << again.out;
  EXPECT_EQ(Resolve(Root("a"), ref).manifest_digest, img.manifest_digest);
}

TEST_F(RegistryCliTest, DiskFullFailsCleanly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  tmpfs_ = work_ / "small";
  stdfs::create_directories(tmpfs_);
  ASSERT_EQ(::mount("tmpfs", tmpfs_.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  TestImage img = MakeImage({MakeRandomLayer("r.bin", 3000000, 15, Compression::kGzip)}, {"v1"});
  FakeRegistry fake;
  auto server = Serve(&fake, img);
  ASSERT_TRUE(Store::Open(tmpfs_).ok());
  ExpectCleanFailure(tmpfs_, "pull " + server->host() + "/team/app:v1", "No space left on device");
}

// Each path of a layer tree with its type, permissions, and content or link target.
std::map<std::string, std::string> TreeContents(const stdfs::path& root) {
  std::map<std::string, std::string> out;
  for (const std::string& rel : ListTree(root)) {
    stdfs::path p = root / rel;
    struct stat st;
    ::lstat(p.c_str(), &st);
    std::string what = std::to_string(st.st_mode);
    if (S_ISREG(st.st_mode)) what += ":" + Sha256Of(ReadFile(p)).str();
    if (S_ISLNK(st.st_mode)) what += "->" + stdfs::read_symlink(p).string();
    out[rel] = what;
  }
  return out;
}

// `push --estargz`: layers any reader takes as plain tar.gz (skopeo copies them, tar -tzf lists
// them), carrying the TOC annotations, prefetched files first; pulled back they give the same
// trees plus eStargz's two metadata files, as Docker's unpack of an eStargz image does.
TEST_F(RegistryCliTest, PushEstargzIsPlainGzipToEveryReaderAndPullsToTheSameTrees) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  std::string ref = registry_->host() + "/team/lazy:v1";
  LoadAndTag(Root("a"), img, ref);
  WriteFile(work_ / "prefetch", "# read first by the entrypoint\n/etc/os-release\n/bin/sh\n");

  ShellResult push = Layerfs(Root("a"), "push --estargz --prefetch-list " + (work_ / "prefetch").string() + " " + ref);
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_NE(push.out.find(img.layers[0].diff_id.short_id() + ": Converting to eStargz\n"), std::string::npos) << push.out;
  EXPECT_EQ(Count(push.out, ": Pushed\n"), 3u) << push.out;

  std::string raw;
  ASSERT_EQ(Skopeo("inspect --raw --tls-verify=false docker://" + ref, &raw), 0);
  auto manifest = nlohmann::json::parse(raw);
  ASSERT_EQ(manifest["layers"].size(), 3u);
  for (const auto& l : manifest["layers"]) {
    EXPECT_EQ(l["mediaType"], kOciLayerGzipType);
    EXPECT_TRUE(l["annotations"].contains("containerd.io/snapshot/stargz/toc.digest")) << l.dump();
    EXPECT_TRUE(l["annotations"].contains("io.containers.estargz.uncompressed-size")) << l.dump();
  }
  ASSERT_EQ(Skopeo("copy --src-tls-verify=false docker://" + ref + " oci:" + (work_ / "copy").string() + ":x"), 0);
  std::string first = manifest["layers"][0]["digest"].get<std::string>().substr(7);
  ShellResult list = RunShellCommand("tar -tzf " + (work_ / "copy/blobs/sha256" / first).string());
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out.starts_with("bin/\nbin/sh\netc/\netc/os-release\n.prefetch.landmark\n")) << list.out;
  EXPECT_TRUE(list.out.ends_with("stargz.index.json\n")) << list.out;

  ShellResult pull = Layerfs(Root("b"), "pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  Image got = Resolve(Root("b"), ref);
  ASSERT_EQ(got.diff_ids.size(), 3u);
  auto a = Store::Open(Root("a"));
  auto b = Store::Open(Root("b"));
  for (size_t i = 0; i < 3; ++i) {
    auto want = TreeContents(a->layer_tree(img.layers[i].diff_id));
    auto tree = TreeContents(b->layer_tree(got.diff_ids[i]));
    EXPECT_EQ(tree.erase("stargz.index.json"), 1u);
    EXPECT_EQ(tree.erase(".prefetch.landmark") + tree.erase(".no.prefetch.landmark"), 1u);
    EXPECT_EQ(tree, want) << "layer " << i;
  }
  ShellResult again = Layerfs(Root("a"), "push --estargz --prefetch-list " + (work_ / "prefetch").string() + " " + ref);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(Count(again.out, ": Layer already exists\n"), 3u) << "the conversion is reproducible\n"
                                                              << again.out;
}

// no_open: the kernel sends no OPEN to record, so the two are refused together, before
// anything is made.
TEST_F(RegistryCliTest, RecordReadsWithNoOpenIsRefusedAndChangesNothing) {
  stdfs::path mnt = work_ / "mnt", reads = work_ / "reads.txt";
  stdfs::create_directories(mnt);
  ShellResult mount = Layerfs(Root("a"), "mount -o no_open --record-reads " + reads.string() + " any:1 " + mnt.string());
  EXPECT_NE(mount.code, 0);
  EXPECT_NE(mount.err.find("no_open"), std::string::npos) << mount.err;
  EXPECT_FALSE(stdfs::exists(reads));
  EXPECT_EQ(Layerfs(Root("a"), "ps -a -q").out, "");
}

// The prefetch list made by a run: `mount --record-reads` lists the image files a command
// opened, first open first, and `push --estargz --prefetch-list` puts them first in the layers
// that hold them (one from each of the three layers here).
TEST_F(RegistryCliTest, RecordedReadsOfARunArePushedFirst) {
  StartRegistry();
  TestImage img = ThreeLayerImage();
  std::string ref = registry_->host() + "/team/recorded:v1";
  LoadAndTag(Root("a"), img, ref);
  stdfs::path mnt = work_ / "mnt", reads = work_ / "reads.txt";
  stdfs::create_directories(mnt);
  ShellResult mount = Layerfs(Root("a"), "mount --record-reads " + reads.string() + " " + ref + " " + mnt.string());
  ASSERT_EQ(mount.code, 0) << mount.err;
  ShellResult run = RunShellCommand("cat " + (mnt / "etc/app.conf").string() + " " + (mnt / "data/blob.bin").string() +
                                    " " + (mnt / "etc/os-release").string() + " " + (mnt / "etc/app.conf").string() +
                                    " >/dev/null && ls -R " + mnt.string() + " >/dev/null");
  ShellResult umount = Layerfs(Root("a"), "umount " + mnt.string());
  if (umount.code != 0) ::umount2(mnt.c_str(), MNT_DETACH);
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(umount.code, 0) << umount.err;
  ASSERT_EQ(ReadFile(reads), "etc/app.conf\ndata/blob.bin\netc/os-release\n");

  ShellResult push = Layerfs(Root("a"), "push --estargz --prefetch-list " + reads.string() + " " + ref);
  ASSERT_EQ(push.code, 0) << push.err;
  ASSERT_EQ(Skopeo("copy --src-tls-verify=false docker://" + ref + " oci:" + (work_ / "copy").string() + ":x"), 0);
  std::string raw;
  ASSERT_EQ(Skopeo("inspect --raw --tls-verify=false docker://" + ref, &raw), 0);
  auto manifest = nlohmann::json::parse(raw);
  ASSERT_EQ(manifest["layers"].size(), 3u);
  const char* firsts[] = {"etc/\netc/os-release\n", "data/blob.bin\n", "etc/app.conf\n"};
  for (size_t i = 0; i < 3; ++i) {
    std::string blob = manifest["layers"][i]["digest"].get<std::string>().substr(7);
    ShellResult list = RunShellCommand("tar -tzf " + (work_ / "copy/blobs/sha256" / blob).string());
    ASSERT_EQ(list.code, 0) << list.err;
    EXPECT_TRUE(list.out.starts_with(std::string(firsts[i]) + ".prefetch.landmark\n")) << "layer " << i << "\n"
                                                                                       << list.out;
  }
}

TEST_F(RegistryCliTest, SaveEstargzWritesAnArchiveSkopeoAndLoadRead) {
  TestImage img = ThreeLayerImage();
  LoadAndTag(Root("a"), img, "team/app:v1");
  stdfs::path out = work_ / "esgz.tar";
  ShellResult save = Layerfs(Root("a"), "save --estargz --format oci-archive -o " + out.string() + " team/app:v1");
  ASSERT_EQ(save.code, 0) << save.err;
  std::string raw;
  ASSERT_EQ(Skopeo("inspect --raw oci-archive:" + out.string() + ":docker.io/team/app:v1", &raw), 0);
  EXPECT_NE(raw.find("containerd.io/snapshot/stargz/toc.digest"), std::string::npos) << raw;
  ShellResult load = Layerfs(Root("b"), "load -q -i " + out.string());
  ASSERT_EQ(load.code, 0) << load.err;
  Image got = Resolve(Root("b"), "team/app:v1");
  ASSERT_EQ(got.layers.size(), 3u);
  EXPECT_TRUE(got.layers[1].annotations.contains("containerd.io/snapshot/stargz/toc.digest"));
  auto b = Store::Open(Root("b"));
  EXPECT_EQ(ReadFile(b->layer_tree(got.diff_ids[0]) / "etc/os-release"), "ID=test\n");
  EXPECT_EQ(Resolve(Root("a"), "team/app:v1").manifest_digest, img.manifest_digest) << "the stored image is untouched";
}

TEST_F(RegistryCliTest, EstargzFlagsFailCleanly) {
  TestImage img = ThreeLayerImage();
  LoadAndTag(Root("a"), img, "127.0.0.1:1/team/app:v1");
  ExpectCleanFailure(Root("a"), "push --prefetch-list /etc/hostname 127.0.0.1:1/team/app:v1", "need --estargz");
  ExpectCleanFailure(Root("a"), "push --estargz --prefetch-list " + (work_ / "missing").string() + " 127.0.0.1:1/team/app:v1",
                     "read prefetch list");
  ExpectCleanFailure(Root("a"), "save --estargz -o " + (work_ / "x.tar").string() + " team/none", "no such image");
  EXPECT_FALSE(stdfs::exists(work_ / "x.tar"));
}

}  // namespace
}  // namespace layerfs::testing
