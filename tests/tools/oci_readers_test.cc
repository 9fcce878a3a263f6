// The store read by the OCI tools people have (Debian's skopeo 1.9 and umoci): an image of every
// input format (docker-archive old and Docker 25+ layouts, a containerd-style export naming a
// Docker schema2 manifest, oci-archive, OCI directory, `import` of a rootfs tar, `pull` from a
// schema2 and from an OCI registry, `commit`, `build`) must be found by its tag with `skopeo
// inspect oci:STORE:REF`, copied out with `skopeo copy`, and listed by `umoci ls`. skopeo 1.9
// looks a tag up only among OCI manifest and index descriptors, so an image that came with
// Docker media types must still have an OCI one in index.json; and what depends on the
// registry's digest (pull's "up to date", push of unchanged bytes) must keep working.
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "layerstore/oci/image.h"
#include "tests/tools/registry_fixture.h"
#include "tests/tools/shell_command.h"
#include "tests/tools/test_images.h"  // with layerstore/test_util.h: TempDir, ReadFile

namespace layerfs::testing {
namespace {

namespace stdfs = std::filesystem;
using Json = nlohmann::json;

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

TestImage Small(const std::string& tag, const std::string& unique) {
  auto base = MakeLayer({{"bin/", ""}, {"bin/sh", "#!/bin/sh\n", "", 0755}, {"etc/", ""}});
  auto top = MakeLayer({{"etc/" + unique, unique + "\n"}});
  return MakeImage({base, top}, {tag});
}

class OciReadersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LocalRegistry::Available()) GTEST_SKIP() << "docker-registry or htpasswd not installed";
    home_ = tmp_.path() / "home";
    stdfs::create_directories(home_);
    std::string error;
    registry_ = LocalRegistry::Start({}, &error);
    ASSERT_TRUE(registry_) << error;
  }
  void TearDown() override {
    if (mounted_) Layerfs("umount " + ShellQuote(mnt().string()));
    registry_.reset();
  }

  stdfs::path root() const { return tmp_.path() / "store"; }
  stdfs::path mnt() const { return tmp_.path() / "mnt"; }
  stdfs::path Scratch(const std::string& name) const { return tmp_.path() / name; }

  // HOME is the test's own: no real credentials or policy of the machine get involved.
  ShellResult Run(const std::string& command) {
    return RunShellCommand("env -u DOCKER_CONFIG HOME=" + ShellQuote(home_.string()) + " " + command + " </dev/null");
  }
  ShellResult Layerfs(const std::string& args) {
    return Run(ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(root().string()) + " " + args);
  }
  // Checks index.json right after the command: the next command's Store::Open would convert
  // Docker records of an older store, and must not be what makes this one pass.
  void LayerfsOk(const std::string& args) {
    ShellResult r = Layerfs(args);
    ASSERT_EQ(r.code, 0) << "layerfs " << args << "\n"
                         << r.out << r.err;
    Json index = Json::parse(ReadFile(root() / "index.json"));
    for (const auto& d : index["manifests"])
      EXPECT_EQ(d["mediaType"], kOciManifestType) << "after layerfs " << args << ": " << d.dump();
  }
  void SkopeoOk(const std::string& args, std::string* out = nullptr) {
    ShellResult r = Run("skopeo " + args);
    ASSERT_EQ(r.code, 0) << "skopeo " << args << "\n"
                         << r.err;
    if (out) *out = r.out;
  }
  // The digest the registry serves `ref` by.
  Digest RegistryDigest(const std::string& ref) {
    std::string raw;
    SkopeoOk("inspect --raw --tls-verify=false docker://" + ref, &raw);
    return Sha256Of(raw);
  }
  // `img` as the registry's repo:v1, pushed by skopeo in the manifest format given.
  std::string PushWithSkopeo(const TestImage& img, const std::string& repo, const std::string& format) {
    stdfs::path layout = Scratch(repo + "-layout");
    WriteOciLayout(layout, {img});
    std::string ref = registry_->host() + "/" + repo + ":v1";
    SkopeoOk("copy --format " + format + " --dest-tls-verify=false oci:" + layout.string() + ":" +
             img.tags[0] + " docker://" + ref);
    std::string raw;
    SkopeoOk("inspect --raw --tls-verify=false docker://" + ref, &raw);
    EXPECT_EQ(Json::parse(raw)["mediaType"], format == "v2s2" ? kDockerManifestType : kOciManifestType) << raw;
    return ref;
  }

  // Every input format, into one store; returns the refs as index.json names them.
  std::vector<std::string> LoadEveryFormat();
  std::string Commit();
  std::string Build();

  TempDir tmp_;
  stdfs::path home_;
  std::unique_ptr<LocalRegistry> registry_;
  bool mounted_ = false;
};

std::vector<std::string> OciReadersTest::LoadEveryFormat() {
  std::vector<std::string> refs;
  WriteDockerArchive(Scratch("old.tar"), {Small("old:1", "old")});
  WriteDockerArchive(Scratch("d25.tar"), {Small("d25:1", "d25")}, /*docker25=*/true);
  WriteOciArchive(Scratch("containerd.tar"), {AsDockerSchema2(Small("containerd:1", "containerd"))});
  WriteOciArchive(Scratch("oci.tar"), {Small("ociarchive:1", "ociarchive")});
  WriteOciLayout(Scratch("ocidir"), {Small("ocidir:1", "ocidir")});
  for (const char* input : {"old.tar", "d25.tar", "containerd.tar", "oci.tar", "ocidir"})
    LayerfsOk("load -q -i " + ShellQuote(Scratch(input).string()));
  for (const char* name : {"old", "d25", "containerd", "ociarchive", "ocidir"})
    refs.push_back(std::string("docker.io/library/") + name + ":1");

  WriteFile(Scratch("rootfs.tar"), BuildLayerTar({{"etc/", ""}, {"etc/rootfs", "r\n"}}));
  LayerfsOk("import " + ShellQuote(Scratch("rootfs.tar").string()) + " rootfs:1");
  refs.push_back("docker.io/library/rootfs:1");

  for (const auto& [repo, format] : std::map<std::string, std::string>{{"s2", "v2s2"}, {"oci", "oci"}}) {
    std::string ref = PushWithSkopeo(Small("v1", "pulled-" + repo), repo + "/app", format);
    LayerfsOk("pull -q " + ref);
    refs.push_back(ref);
  }
  refs.push_back(Commit());
  refs.push_back(Build());
  return refs;
}

// A container of the image that came as a Docker schema2 manifest, one file added, committed.
std::string OciReadersTest::Commit() {
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    ADD_FAILURE() << "no /dev/fuse: commit cannot be tested";
    return "";
  }
  stdfs::create_directories(mnt());
  mounted_ = true;  // before the mount: TearDown unmounts whatever this call left, even on failure
  LayerfsOk("mount --name c1 containerd:1 " + ShellQuote(mnt().string()));
  std::ofstream(mnt() / "etc/committed") << "c\n";
  LayerfsOk("commit c1 committed:1");
  LayerfsOk("umount " + ShellQuote(mnt().string()));
  mounted_ = false;
  return "docker.io/library/committed:1";
}

// FROM the schema2 pull (Docker media types in its registry manifest), COPY and ENV: no RUN.
std::string OciReadersTest::Build() {
  stdfs::path ctx = Scratch("ctx");
  stdfs::create_directories(ctx);
  std::ofstream(ctx / "Dockerfile") << "FROM " << registry_->host() << "/s2/app:v1\nCOPY f /f\nENV A=b\n";
  std::ofstream(ctx / "f") << "f\n";
  LayerfsOk("build -q -t built:1 " + ShellQuote(ctx.string()));
  return "docker.io/library/built:1";
}

TEST_F(OciReadersTest, EveryImageOfEveryInputIsReadableBySkopeoAndUmoci) {
  std::vector<std::string> refs = LoadEveryFormat();
  ASSERT_FALSE(HasFailure());

  ShellResult umoci = Run("umoci ls --layout " + ShellQuote(root().string()));
  ASSERT_EQ(umoci.code, 0) << umoci.err;
  for (const auto& ref : refs) {
    SCOPED_TRACE(ref);
    EXPECT_EQ(Count(umoci.out, ref + "\n"), 1u) << umoci.out;
    std::string inspect;
    SkopeoOk("inspect oci:" + root().string() + ":" + ref, &inspect);
    EXPECT_NE(inspect.find("\"Layers\""), std::string::npos) << inspect;
    stdfs::path out = Scratch("copy.tar");
    stdfs::remove(out);
    SkopeoOk("copy oci:" + root().string() + ":" + ref + " oci-archive:" + out.string() + ":" + ref);
    // What skopeo copied out loads back as the same image (same config: same image ID).
    auto image_id = [&](const stdfs::path& store) {
      ShellResult r = Run(ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(store.string()) + " inspect " + ref);
      return r.code == 0 ? Json::parse(r.out)[0]["Id"].get<std::string>() : "inspect failed: " + r.err;
    };
    stdfs::path fresh = Scratch("fresh");
    stdfs::remove_all(fresh);
    ShellResult load = Run(ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(fresh.string()) + " load -q -i " +
                           ShellQuote(out.string()));
    ASSERT_EQ(load.code, 0) << load.err;
    EXPECT_EQ(image_id(fresh), image_id(root()));
  }
}

// The schema2 registry's manifest stays the image's digest: `images --digests`, pull "up to
// date", and a push of the unchanged image uploads no blob and gives the registry the same
// manifest bytes.
TEST_F(OciReadersTest, Schema2PullKeepsTheRegistryDigestForPullAndPush) {
  TestImage img = Small("v1", "schema2");
  std::string ref = PushWithSkopeo(img, "s2/app", "v2s2");
  Digest served = RegistryDigest(ref);
  ShellResult pull = Layerfs("pull " + ref);
  ASSERT_EQ(pull.code, 0) << pull.err;
  EXPECT_NE(pull.out.find("Digest: " + served.str()), std::string::npos) << pull.out;

  ShellResult images = Layerfs("images --digests --format json");
  ASSERT_EQ(images.code, 0) << images.err;
  EXPECT_EQ(Json::parse(images.out)["Digest"], served.str()) << images.out;
  ShellResult again = Layerfs("pull " + ref);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("Status: Image is up to date for " + ref), std::string::npos) << again.out;

  ShellResult push = Layerfs("push " + ref);
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_EQ(Count(push.out, ": Layer already exists"), img.layers.size()) << push.out;
  EXPECT_NE(push.out.find("v1: digest: " + served.str()), std::string::npos) << push.out;
  EXPECT_EQ(RegistryDigest(ref), served);
  // Another repository of the registry: blobs are mounted, the manifest is the same bytes.
  std::string copy = registry_->host() + "/s2/copy:v1";
  LayerfsOk("tag " + ref + " " + copy);
  ShellResult push_copy = Layerfs("push " + copy);
  ASSERT_EQ(push_copy.code, 0) << push_copy.err;
  EXPECT_EQ(Count(push_copy.out, ": Pushed"), 0u) << push_copy.out;
  EXPECT_EQ(RegistryDigest(copy), served);

  for (const char* command : {"history ", "inspect ", "rmi "}) LayerfsOk(command + ref);
  LayerfsOk("rmi " + copy);
  std::string left = Layerfs("system df").out;
  EXPECT_EQ(Json::parse(ReadFile(root() / "index.json"))["manifests"].size(), 0u);
  EXPECT_TRUE(stdfs::is_empty(root() / "blobs/sha256")) << left;
}

}  // namespace
}  // namespace layerfs::testing
