// Runs the real `layerfs` binary on images the tests build: every load format, images,
// history, inspect, tag, rmi, prune, save round trips checked with skopeo and umoci, system
// df sharing, and bad input (one line on stderr, exit 1, store unchanged).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/layerstore/images_fixture.h"
#include "tests/tools/shell_command.h"
#include "tools/table.h"

extern char** environ;

namespace layerfs::testing {
namespace {

using Json = nlohmann::json;

using Outcome = ShellResult;

// stdin from /dev/null: a command must never wait for input in a test.
Outcome Exec(const std::string& command) { return RunShellCommand(command + " </dev/null"); }

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TestImage Busybox(const std::string& tag, const std::string& unique, Compression c = Compression::kGzip) {
  auto base = MakeLayer({{"bin/", ""}, {"bin/busybox", std::string(30000, 'b')}, {"bin/sh", "", "busybox"}}, c);
  auto top = MakeLayer({{"etc/", ""}, {"etc/" + unique, std::string(5000 + unique.size(), 'u')}, {".wh.old", ""}}, c);
  return MakeImage({base, top}, tag.empty() ? std::vector<std::string>{} : std::vector<std::string>{tag});
}

class ImageCommandsTest : public ::testing::Test {
 protected:
  fs::path root() const { return dir_.path() / "root"; }
  fs::path Scratch(const std::string& name) const { return dir_.path() / name; }
  Outcome Layerfs(const std::string& args, const fs::path& store = {}) {
    return Exec(ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote((store.empty() ? root() : store).string()) + " " + args);
  }
  Outcome LoadOk(const fs::path& input, const fs::path& store = {}) {
    Outcome r = Layerfs("load -q " + ShellQuote(input.string()), store);
    EXPECT_EQ(r.code, 0) << r.err;
    return r;
  }
  // A failing command: exit 1, exactly one line on stderr naming `part`, store unchanged.
  void ExpectCleanFailure(const std::string& args, const std::string& part) {
    Layerfs("images");  // creates the store layout
    auto before = StoreListing(root());
    Outcome r = Layerfs(args);
    EXPECT_EQ(r.code, 1) << args << "\n"
                         << r.out;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
    EXPECT_EQ(StoreListing(root()), before) << args;
  }
  std::vector<Json> JsonLines(const std::string& args) {
    Outcome r = Layerfs(args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<Json> out;
    for (const auto& l : Lines(r.out)) out.push_back(Json::parse(l));
    return out;
  }

  TempDir dir_;
};

TEST_F(ImageCommandsTest, LoadsEveryFormatAndListsIt) {
  auto img = Busybox("redis:latest", "a");
  WriteOciArchive(Scratch("oci.tar"), {img});
  WriteOciLayout(Scratch("layout"), {Busybox("layout:1", "b")});
  WriteDockerArchive(Scratch("old.tar"), {Busybox("old:1", "c", Compression::kNone)});
  WriteDockerArchive(Scratch("new.tar"), {Busybox("new:1", "d")}, true);
  EXPECT_EQ(LoadOk(Scratch("oci.tar")).out, "Loaded image: redis:latest\n");
  EXPECT_EQ(LoadOk(Scratch("layout")).out, "Loaded image: layout:1\n");
  EXPECT_EQ(Layerfs("load -q -i " + ShellQuote(Scratch("old.tar").string())).out, "Loaded image: old:1\n");
  EXPECT_EQ(LoadOk(Scratch("new.tar")).out, "Loaded image: new:1\n");

  Outcome images = Layerfs("images");
  ASSERT_EQ(images.code, 0);
  auto lines = Lines(images.out);
  ASSERT_EQ(lines.size(), 5u) << images.out;
  EXPECT_EQ(lines[0].rfind("REPOSITORY   TAG       IMAGE ID       CREATED", 0), 0u) << lines[0];
  EXPECT_NE(images.out.find("redis        latest    " + img.config_digest.short_id()), std::string::npos) << images.out;
  // SIZE: every layer's content (busybox 30000 + link 7 + unique 5001).
  EXPECT_NE(images.out.find("35kB"), std::string::npos) << images.out;

  auto json = JsonLines("images --format json");
  ASSERT_EQ(json.size(), 4u);
  bool found = false;
  for (const auto& j : json) {
    if (j["Repository"] != "redis") continue;
    found = true;
    EXPECT_EQ(j["Tag"], "latest");
    EXPECT_EQ(j["ID"], img.config_digest.short_id());
    EXPECT_EQ(j["Digest"], img.manifest_digest.str());
    EXPECT_EQ(j["Size"], "35kB");
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(Lines(Layerfs("images -q").out).size(), 4u);
  EXPECT_NE(Layerfs("images --no-trunc --digests redis").out.find(img.config_digest.str()), std::string::npos);
  EXPECT_EQ(Lines(Layerfs("image ls redis").out).size(), 2u);
}

TEST_F(ImageCommandsTest, LoadingTwiceAddsZeroBytes) {
  WriteDockerArchive(Scratch("d.tar"), {Busybox("redis:latest", "a")}, true);
  LoadOk(Scratch("d.tar"));
  auto before = StoreListing(root());
  Outcome again = LoadOk(Scratch("d.tar"));
  EXPECT_EQ(again.out, "Loaded image: redis:latest\n");
  EXPECT_EQ(StoreListing(root()), before);
}

// system df counts what the disk holds (allocated blocks: blobs, unpacked trees, indexes), each
// shared layer once: its rows add up to `du -s --block-size=1` of the store.
TEST_F(ImageCommandsTest, SystemDfShowsSharedLayersOnceAndAgreesWithDu) {
  auto a = Busybox("a:1", "one");
  auto b = Busybox("b:1", "two-two");
  WriteOciArchive(Scratch("ab.tar"), {a, b});
  LoadOk(Scratch("ab.tar"));
  Outcome du = Exec("du -s --block-size=1 " + ShellQuote(root().string()));
  uint64_t du_bytes = std::stoull(du.out);

  auto summary = JsonLines("system df --format json");
  ASSERT_EQ(summary.size(), 5u);
  EXPECT_EQ(summary[0]["Type"], "Images");
  EXPECT_EQ(summary[0]["TotalCount"], "2");
  EXPECT_EQ(summary[0]["Size"], cli::HumanSize(du_bytes));
  EXPECT_EQ(summary[1]["Size"], "0B");
  EXPECT_EQ(summary[3]["Size"], "0B");
  EXPECT_EQ(summary[4]["Type"], "Partial Layers");
  EXPECT_EQ(summary[4]["TotalCount"], "0");

  auto verbose = JsonLines("system df -v --format json");
  ASSERT_EQ(verbose.size(), 1u);
  EXPECT_EQ(verbose[0]["StoreTotal"], cli::HumanSize(du_bytes));
  EXPECT_EQ(verbose[0]["PartialLayers"], nlohmann::json::array());
  auto images = verbose[0]["Images"];
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0]["SharedSize"], images[1]["SharedSize"]);
  EXPECT_NE(images[0]["SharedSize"], "0B");
  auto layers = verbose[0]["Layers"];
  ASSERT_EQ(layers.size(), 3u);
  int shared_layers = 0;
  for (const auto& l : layers) {
    shared_layers += l["Images"] == "2";
    EXPECT_NE(l["BlobSize"], "0B");
    EXPECT_NE(l["UnpackedSize"], "0B");
  }
  EXPECT_EQ(shared_layers, 1);
  Outcome text = Layerfs("system df -v");
  EXPECT_NE(text.out.find("SHARED SIZE   UNIQUE SIZE   CONTAINERS"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Layers space usage:"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Store total: " + cli::HumanSize(du_bytes)), std::string::npos) << text.out;
  Outcome plain = Layerfs("system df");
  EXPECT_EQ(Lines(plain.out)[0], "TYPE             TOTAL     ACTIVE    SIZE      RECLAIMABLE");  // "Partial Layers" is one wider than "Local Volumes"
  // `images` keeps the logical size: every layer's content, shared ones in each image.
  auto listed = JsonLines("images --format json");
  ASSERT_EQ(listed.size(), 2u);
  for (const auto& row : listed) {
    const TestImage& img = row["Repository"] == "a" ? a : b;
    EXPECT_EQ(row["Size"], cli::HumanSize(img.layers[0].content_size + img.layers[1].content_size, 3));
  }
}

TEST_F(ImageCommandsTest, SaveThenLoadKeepsTheManifestDigestAndSkopeoReadsIt) {
  auto old_layout = Busybox("old:1", "c", Compression::kNone);
  WriteDockerArchive(Scratch("old.tar"), {old_layout});
  WriteOciArchive(Scratch("oci.tar"), {Busybox("redis:latest", "a")});
  LoadOk(Scratch("old.tar"));
  LoadOk(Scratch("oci.tar"));
  auto digests = [&](const fs::path& store) {
    std::map<std::string, std::string> out;
    Outcome r = Layerfs("images --format json", store);
    for (const auto& l : Lines(r.out)) {
      auto j = Json::parse(l);
      out[j["Repository"].get<std::string>()] = j["Digest"];
    }
    return out;
  };
  auto original = digests(root());
  ASSERT_EQ(original.size(), 2u);
  for (const std::string format : {"docker-archive", "oci-archive"}) {
    fs::path file = Scratch(format + ".tar");
    Outcome save = Layerfs("save -o " + ShellQuote(file.string()) + " --format " + format + " old:1 redis");
    ASSERT_EQ(save.code, 0) << save.err;
    fs::path fresh = Scratch("fresh-" + format);
    Outcome load = LoadOk(file, fresh);
    EXPECT_EQ(load.out, "Loaded image: old:1\nLoaded image: redis:latest\n");
    EXPECT_EQ(digests(fresh), original) << format;
  }
  // skopeo (no network: local transports only) accepts the files and the store itself.
  Outcome oci = Exec("skopeo inspect --raw oci-archive:" + ShellQuote(Scratch("oci-archive.tar").string()) + ":docker.io/library/redis:latest");
  EXPECT_EQ(oci.code, 0) << oci.err;
  EXPECT_EQ(Sha256Of(oci.out).str(), original["redis"]);
  Outcome docker = Exec("skopeo inspect docker-archive:" + ShellQuote(Scratch("docker-archive.tar").string()) + ":old:1");
  EXPECT_EQ(docker.code, 0) << docker.err;
  EXPECT_NE(docker.out.find(old_layout.layers[0].diff_id.str()), std::string::npos) << docker.out;
  Outcome store = Exec("skopeo inspect --raw oci:" + ShellQuote(root().string()) + ":docker.io/library/redis:latest");
  EXPECT_EQ(store.code, 0) << store.err;
  EXPECT_EQ(Sha256Of(store.out).str(), original["redis"]);
  Outcome umoci = Exec("umoci ls --layout " + ShellQuote(root().string()));
  EXPECT_EQ(umoci.code, 0) << umoci.err;
  EXPECT_NE(umoci.out.find("docker.io/library/redis:latest"), std::string::npos) << umoci.out;
}

TEST_F(ImageCommandsTest, HistoryAndInspectLookLikeDocker) {
  auto img = Busybox("redis:latest", "a");
  WriteOciArchive(Scratch("oci.tar"), {img});
  LoadOk(Scratch("oci.tar"));
  Outcome h = Layerfs("history redis");
  ASSERT_EQ(h.code, 0) << h.err;
  auto lines = Lines(h.out);
  ASSERT_EQ(lines.size(), 4u) << h.out;
  EXPECT_EQ(lines[0].rfind("IMAGE          CREATED", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind(img.config_digest.short_id(), 0), 0u);
  EXPECT_NE(lines[1].find("CMD [\"sh\"]"), std::string::npos);
  EXPECT_NE(lines[1].find("0B"), std::string::npos);
  EXPECT_EQ(lines[2].rfind("<missing>", 0), 0u);
  auto json = JsonLines("history --format json redis");
  ASSERT_EQ(json.size(), 3u);
  EXPECT_EQ(json[2]["CreatedBy"], "layer 0");
  EXPECT_EQ(json[2]["Size"], cli::HumanSize(img.layers[0].content_size, 3));
  EXPECT_EQ(json[2]["ID"], "<missing>");
  EXPECT_EQ(Layerfs("history -q redis").out, img.config_digest.short_id() + "\n<missing>\n<missing>\n");

  Outcome inspect = Layerfs("inspect redis " + img.config_digest.short_id());
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  auto j = Json::parse(inspect.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["Id"], img.config_digest.str());
  EXPECT_EQ(j[0]["RepoTags"], Json::array({"redis:latest"}));
  EXPECT_EQ(j[0]["RepoDigests"], Json::array({"redis@" + img.manifest_digest.str()}));
  EXPECT_EQ(j[0]["RootFS"]["Layers"], Json::array({img.layers[0].diff_id.str(), img.layers[1].diff_id.str()}));
  EXPECT_EQ(j[0]["Os"], "linux");
  EXPECT_EQ(j[0]["Config"]["Cmd"], Json::array({"sh"}));
}

TEST_F(ImageCommandsTest, TagRmiAndPrune) {
  auto img = Busybox("redis:latest", "a");
  WriteOciArchive(Scratch("oci.tar"), {img});
  Layerfs("images");
  auto empty = StoreListing(root());
  LoadOk(Scratch("oci.tar"));
  ASSERT_EQ(Layerfs("tag redis my/redis:2").code, 0);
  ExpectCleanFailure("rmi " + img.config_digest.short_id(), "must be forced");
  EXPECT_EQ(Layerfs("rmi my/redis:2").out, "Untagged: my/redis:2\n");
  Outcome rmi = Layerfs("rmi redis");
  ASSERT_EQ(rmi.code, 0) << rmi.err;
  auto lines = Lines(rmi.out);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0], "Untagged: redis:latest");
  EXPECT_EQ(lines[1], "Deleted: " + img.config_digest.str());
  EXPECT_EQ(StoreListing(root()), empty) << "rmi left files behind";

  // An untagged image is dangling: prune removes it, and reports what it reclaimed.
  WriteOciArchive(Scratch("untagged.tar"), {Busybox("", "z")});
  EXPECT_NE(LoadOk(Scratch("untagged.tar")).out.find("Loaded image ID: sha256:"), std::string::npos);
  Outcome prune = Layerfs("image prune -f");
  ASSERT_EQ(prune.code, 0) << prune.err;
  EXPECT_NE(prune.out.find("Deleted Images:\ndeleted: sha256:"), std::string::npos) << prune.out;
  EXPECT_NE(prune.out.find("Total reclaimed space: "), std::string::npos);
  EXPECT_EQ(StoreListing(root()), empty);
}

TEST_F(ImageCommandsTest, ImportMakesAOneLayerImage) {
  WriteFile(Scratch("rootfs.tar.gz"), BuildLayerTarGz({{"bin/", ""}, {"bin/sh", "shell"}}));
  Outcome r = Layerfs("import " + ShellQuote(Scratch("rootfs.tar.gz").string()) + " myroot:1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("sha256:", 0), 0u);
  auto history = JsonLines("history --format json myroot:1");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["Comment"], "Imported from " + Scratch("rootfs.tar.gz").string());
  EXPECT_EQ(history[0]["Size"], "5B");
  ExpectCleanFailure("import " + ShellQuote(Scratch("missing.tar").string()) + " x:1", "missing.tar");
  WriteFile(Scratch("junk.tar.gz"), Gzip("not a tar at all").substr(0, 15));
  ExpectCleanFailure("import " + ShellQuote(Scratch("junk.tar.gz").string()) + " x:1", "junk.tar.gz");
}

TEST_F(ImageCommandsTest, BadInputFailsWithOneLineAndChangesNothing) {
  auto img = Busybox("redis:latest", "a");
  WriteOciArchive(Scratch("oci.tar"), {img});
  LoadOk(Scratch("oci.tar"));
  ExpectCleanFailure("inspect nosuchimage", "no such image: nosuchimage");
  ExpectCleanFailure("rmi nosuchimage", "no such image");
  ExpectCleanFailure("load " + ShellQuote(Scratch("missing.tar").string()), "missing.tar: no such file");
  WriteFile(Scratch("text.txt"), "hello, I am not an archive\n");
  ExpectCleanFailure("load " + ShellQuote(Scratch("text.txt").string()), "not a docker-archive, oci-archive or OCI layout");
  ExpectCleanFailure("tag redis Bad/Name", "must be lowercase");

  auto bad_layer = MakeLayer({{"data", std::string(100000, 'q') + "end"}});
  bad_layer.blob.resize(bad_layer.blob.size() / 2);
  bad_layer.digest = Sha256Of(bad_layer.blob);
  WriteOciArchive(Scratch("trunc.tar"), {MakeImage({img.layers[0], bad_layer}, {"trunc:1"})});
  ExpectCleanFailure("load " + ShellQuote(Scratch("trunc.tar").string()), bad_layer.digest.str());

  WriteOciLayout(Scratch("mismatch"), {Busybox("mm:1", "m")});
  auto mm = Busybox("mm:1", "m");
  fs::path blob = Scratch("mismatch") / "blobs/sha256" / mm.layers[1].digest.hex();
  std::string bytes = ReadFile(blob);
  bytes[bytes.size() / 2] ^= 0x21;  // same size, other bytes
  WriteFile(blob, bytes);
  ExpectCleanFailure("load " + ShellQuote(Scratch("mismatch").string()), "does not match its digest");

  WriteOciLayout(Scratch("missing-blob"), {mm});
  fs::remove(Scratch("missing-blob") / "blobs/sha256" / mm.config_digest.hex());
  ExpectCleanFailure("load " + ShellQuote(Scratch("missing-blob").string()), "blob " + mm.config_digest.str() + " named by manifest");
}

TEST_F(ImageCommandsTest, AmbiguousIdPrefixIsAnError) {
  std::vector<TestImage> images;
  std::map<char, std::string> first_char;
  for (int i = 0; images.size() < 2; ++i) {
    auto img = MakeImage({MakeLayer({{"f", std::to_string(i)}})}, {"img" + std::to_string(i) + ":1"});
    char c = img.config_digest.hex()[0];
    if (first_char.count(c)) {
      images = {MakeImage({MakeLayer({{"f", first_char[c]}})}, {"first:1"}), img};
    }
    first_char[c] = std::to_string(i);
  }
  WriteOciArchive(Scratch("two.tar"), images);
  LoadOk(Scratch("two.tar"));
  std::string prefix(1, images[0].config_digest.hex()[0]);
  ExpectCleanFailure("inspect " + prefix, "ambiguous image ID prefix");
  EXPECT_EQ(Layerfs("inspect " + images[0].config_digest.hex().substr(0, 20)).code, 0);
}

TEST_F(ImageCommandsTest, UsageErrorsExitTwoAndHelpWorks) {
  EXPECT_EQ(Layerfs("images --bogus").code, 2);
  EXPECT_EQ(Layerfs("tag onlyone").code, 2);
  for (const char* cmd : {"load", "import", "save", "images", "history", "inspect", "tag", "rmi", "image prune", "system df"}) {
    Outcome r = Layerfs(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
}

// A load killed half way leaves only tmp/ litter: the next run sweeps it and the image is
// absent (or, if the kill came after the commit, whole).
TEST_F(ImageCommandsTest, LoadKilledHalfWayLeavesACleanStore) {
  std::vector<TestLayer> layers;
  for (uint32_t i = 0; i < 4; ++i) layers.push_back(MakeRandomLayer("blob" + std::to_string(i), 40 << 20, i));
  auto img = MakeImage(layers, {"big:1"});
  WriteOciArchive(Scratch("big.tar"), {img});
  layers.clear();
  Layerfs("images");
  auto before = StoreListing(root());
  std::string root_arg = root().string(), input = Scratch("big.tar").string();
  const char* argv[] = {LAYERFS_BINARY, "--root", root_arg.c_str(), "load", input.c_str(), nullptr};
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, LAYERFS_BINARY, nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  // Wait until it is busy staging, then kill it.
  for (int i = 0; i < 400 && fs::is_empty(root() / "tmp"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ::kill(pid, SIGKILL);
  int status;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "load finished before the kill; make the archive bigger";
  Outcome images = Layerfs("images --format json");
  ASSERT_EQ(images.code, 0) << images.err;
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
  if (images.out.empty()) {
    EXPECT_EQ(StoreListing(root()), before);
  } else {
    EXPECT_EQ(Layerfs("inspect big:1").code, 0);
  }
  Outcome again = LoadOk(Scratch("big.tar"));
  EXPECT_EQ(again.out, "Loaded image: big:1\n");
}

// Off a terminal, load prints one plain line per layer and status; on one (a pty from
// script(1)), Docker's bars: "<id>: Loading layer [===>   ]  1.2MB/4.5MB".
TEST_F(ImageCommandsTest, LoadShowsProgressPerLayer) {
  auto img = MakeImage({MakeRandomLayer("big", 3 << 20, 7, Compression::kGzip), MakeLayer({{"small", "x"}})}, {"p:1"});
  WriteOciArchive(Scratch("p.tar"), {img});
  Outcome plain = Layerfs("load " + ShellQuote(Scratch("p.tar").string()));
  ASSERT_EQ(plain.code, 0) << plain.err;
  std::string id0 = img.layers[0].diff_id.hex().substr(0, 12), id1 = img.layers[1].diff_id.hex().substr(0, 12);
  for (const auto& id : {id0, id1}) {
    EXPECT_NE(plain.out.find(id + ": Loading layer\n"), std::string::npos) << plain.out;
    EXPECT_NE(plain.out.find(id + ": Loaded\n"), std::string::npos) << plain.out;
  }
  EXPECT_EQ(plain.out.find("\x1b["), std::string::npos);
  EXPECT_EQ(Lines(plain.out).back(), "Loaded image: p:1");
  Outcome again = Layerfs("load " + ShellQuote(Scratch("p.tar").string()));
  EXPECT_NE(again.out.find(id0 + ": Already exists\n"), std::string::npos) << again.out;

  fs::path other = Scratch("tty-store");
  std::string cmd = ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(other.string()) + " load " + ShellQuote(Scratch("p.tar").string());
  Outcome tty = Exec("script -qec " + ShellQuote(cmd) + " /dev/null");
  ASSERT_EQ(tty.code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("\x1b["), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(id0 + ": Loading layer ["), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("MB/"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("Loaded image: p:1"), std::string::npos) << tty.out;
}

TEST_F(ImageCommandsTest, SystemPruneAsksThenRemovesDanglingImagesAndLitter) {
  auto tagged = Busybox("keep:1", "k");
  WriteOciArchive(Scratch("both.tar"), {tagged, Busybox("", "dangling")});
  LoadOk(Scratch("both.tar"));
  fs::path litter = root() / "tmp" / "load-999999999-0-1";  // no such pid: a dead writer's
  WriteFile(litter, std::string(5000, 'l'));
  auto before = StoreListing(root());

  auto piped = [&](const std::string& answer, const std::string& args) {
    return Exec("{ echo " + answer + " | " + ShellQuote(LAYERFS_BINARY) + " --root " + ShellQuote(root().string()) + " " + args + "; }");
  };
  Outcome declined = piped("n", "system prune");
  EXPECT_EQ(declined.code, 0) << declined.err;
  EXPECT_NE(declined.out.find("WARNING! This will remove:\n  - all dangling images"), std::string::npos) << declined.out;
  EXPECT_NE(declined.out.find("Are you sure you want to continue? [y/N] "), std::string::npos);
  EXPECT_EQ(StoreListing(root()), before);

  Outcome pruned = Layerfs("system prune -f");
  ASSERT_EQ(pruned.code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("Deleted Images:\ndeleted: sha256:"), std::string::npos) << pruned.out;
  EXPECT_NE(pruned.out.find("Total reclaimed space: "), std::string::npos) << pruned.out;
  EXPECT_EQ(pruned.out.find("Total reclaimed space: 0B"), std::string::npos) << pruned.out;
  EXPECT_FALSE(fs::exists(litter));
  EXPECT_EQ(Lines(Layerfs("images -q").out).size(), 1u);

  Outcome all = piped("y", "system prune -a");
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_NE(all.out.find("untagged: keep:1"), std::string::npos) << all.out;
  EXPECT_TRUE(Layerfs("images -q").out.empty());
  EXPECT_TRUE(fs::is_empty(root() / "blobs/sha256"));
  EXPECT_TRUE(fs::is_empty(root() / "layers"));
}

// SIGKILL at the two points where a load has published blobs and layers that index.json does
// not name yet: the next run (any command) deletes them, and the store is as before.
TEST_F(ImageCommandsTest, LoadKilledDuringPublishIsRecoveredByTheNextRun) {
  auto kept = Busybox("kept:1", "k");
  WriteOciArchive(Scratch("kept.tar"), {kept});
  LoadOk(Scratch("kept.tar"));
  auto img = Busybox("crash:1", "c");  // shares its base layer with kept:1
  WriteOciArchive(Scratch("crash.tar"), {img});
  auto before = StoreListing(root());
  for (const char* point : {"load-mid-publish", "load-before-record"}) {
    Outcome killed = Exec("LAYERFS_FAILPOINT=" + std::string(point) + " " + ShellQuote(LAYERFS_BINARY) + " --root " +
                          ShellQuote(root().string()) + " load -q " + ShellQuote(Scratch("crash.tar").string()));
    EXPECT_TRUE(killed.code == 128 + SIGKILL || killed.code == -1) << point << ": " << killed.code;
    EXPECT_NE(StoreListing(root()), before) << point << ": nothing was published before the kill";
    if (std::string(point) == "load-before-record") {
      EXPECT_TRUE(fs::exists(root() / "blobs/sha256" / img.manifest_digest.hex()));
      EXPECT_TRUE(fs::exists(root() / "layers" / img.layers[1].diff_id.hex()));
    }
    Outcome next = Layerfs("images -q");
    ASSERT_EQ(next.code, 0) << next.err;
    EXPECT_EQ(Lines(next.out).size(), 1u) << point;
    EXPECT_EQ(StoreListing(root()), before) << point;
    EXPECT_TRUE(fs::is_empty(root() / "tmp")) << point;
  }
  EXPECT_EQ(LoadOk(Scratch("crash.tar")).out, "Loaded image: crash:1\n");
}

}  // namespace
}  // namespace layerfs::testing
