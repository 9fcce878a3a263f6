// RegistryClient and registry_auth against a loopback HTTP server of the test's own: manifest
// and blob fetches, Range resume after a cut, retries, errors, Basic and Bearer (token server)
// authentication; plus challenge parsing and the Docker config credentials file.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "layerstore/registry/registry_auth.h"
#include "layerstore/registry/registry_client.h"
#include "tests/tools/loopback_http_server.h"

namespace layerfs {
namespace {

using testing::FakeRegistry;
using testing::LoopbackHttpServer;

// A scratch directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/layerfs-regclient-XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Points DOCKER_CONFIG at a scratch directory for one test.
class ScopedDockerConfig {
 public:
  explicit ScopedDockerConfig(const std::filesystem::path& dir) {
    if (const char* old = std::getenv("DOCKER_CONFIG")) old_ = old;
    ::setenv("DOCKER_CONFIG", dir.c_str(), 1);
  }
  ~ScopedDockerConfig() {
    if (old_.empty()) ::unsetenv("DOCKER_CONFIG");
    else
      ::setenv("DOCKER_CONFIG", old_.c_str(), 1);
  }

 private:
  std::string old_;
};

RegistryOptions Fast(const std::string& host) {
  RegistryOptions o;
  o.registry = host;
  o.max_attempts = 3;
  o.backoff = std::chrono::milliseconds(5);
  return o;
}

std::string Pseudo(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (char& c : s) c = static_cast<char>((x = x * 1103515245 + 12345) >> 16);
  return s;
}

struct FakeFixture {
  FakeRegistry reg;
  std::string blob = Pseudo(300000);
  Digest blob_digest = Sha256Of(blob);
  std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  std::unique_ptr<LoopbackHttpServer> server;

  FakeFixture() {
    reg.repo = "team/app";
    reg.manifests["v1"] = manifest;
    reg.manifests[Sha256Of(manifest).str()] = manifest;
    reg.blobs[blob_digest.str()] = blob;
    reg.SetFault(blob_digest.str(), FakeRegistry::Fault::kNone);
    server = std::make_unique<LoopbackHttpServer>([this](const auto& r) { return reg.Handle(r); });
  }
  Status Fetch(RegistryClient& c, std::string* out) {
    return c.GetBlob("team/app", blob_digest, blob.size(), [out](const char* d, size_t n) {
      out->append(d, n);
      return Status::Ok();
    });
  }
};

TEST(RegistryAuth, ParsesBasicAndBearerChallenges) {
  auto basic = ParseChallenge(R"(Basic realm="layerfs-test")");
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->scheme, "basic");
  EXPECT_EQ(basic->params["realm"], "layerfs-test");
  auto bearer = ParseChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->scheme, "bearer");
  EXPECT_EQ(bearer->params["realm"], "https://auth.example/token");
  EXPECT_EQ(bearer->params["service"], "registry.example");
  EXPECT_EQ(bearer->params["scope"], "repository:a/b:pull,push");
  EXPECT_FALSE(ParseChallenge(""));
}

TEST(RegistryAuth, Base64RoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "user:pa:ss", std::string("\0\xff\x10", 3)}) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("tester:s3cret"), "dGVzdGVyOnMzY3JldA==");
  EXPECT_FALSE(Base64Decode("abc").ok());
}

// Found by tests/fuzz/registry_headers_fuzz: "====" made the decoded length negative, and the
// resize to it threw std::length_error out of LoadCredentials.
TEST(RegistryAuth, Base64WithMoreThanTwoPadsIsAnError) {
  EXPECT_FALSE(Base64Decode("====").ok());
  EXPECT_FALSE(Base64Decode("a===").ok());
  EXPECT_FALSE(Base64Decode("ab======").ok());
  auto two = Base64Decode("YQ==");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, "a");
}

TEST(RegistryAuth, CredentialsLiveInDockerConfigAndKeepOtherKeys) {
  TempDir dir;
  ScopedDockerConfig env(dir.path());
  std::ofstream(dir.path() / "config.json")
      << R"({"auths":{"https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"}},"psFormat":"table"})";
  auto hub = LoadCredentials("docker.io");
  ASSERT_TRUE(hub.ok()) << hub.status().message();
  EXPECT_EQ(hub->username, "hub");
  EXPECT_EQ(hub->password, "hubpw");

  ASSERT_TRUE(StoreCredentials("127.0.0.1:5000", {"tester", "pw:with:colons"}).ok());
  auto local = LoadCredentials("127.0.0.1:5000");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->username, "tester");
  EXPECT_EQ(local->password, "pw:with:colons");
  struct stat st;
  ASSERT_EQ(::stat((dir.path() / "config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto doc = nlohmann::json::parse(std::ifstream(dir.path() / "config.json"));
  EXPECT_EQ(doc["psFormat"], "table");
  EXPECT_EQ(doc["auths"]["127.0.0.1:5000"]["auth"], Base64Encode("tester:pw:with:colons"));

  auto removed = RemoveCredentials("127.0.0.1:5000");
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_TRUE(LoadCredentials("127.0.0.1:5000")->empty());
  EXPECT_FALSE(*RemoveCredentials("127.0.0.1:5000"));
  EXPECT_EQ(LoadCredentials("docker.io")->username, "hub");
}

TEST(RegistryAuth, MalformedConfigIsAnErrorNamingTheFile) {
  TempDir dir;
  ScopedDockerConfig env(dir.path());
  std::ofstream(dir.path() / "config.json") << "{not json";
  auto c = LoadCredentials("127.0.0.1:5000");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("config.json"), std::string::npos);
}

TEST(RegistryClient, PlainHttpOnlyForLoopbackOrInsecure) {
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("localhost:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("registry.example:5000"));
  EXPECT_EQ(RegistryClient(Fast("127.0.0.1:5000")).base_url(), "http://127.0.0.1:5000");
  EXPECT_EQ(RegistryClient(Fast("registry.example")).base_url(), "https://registry.example");
  EXPECT_EQ(RegistryClient(Fast("docker.io")).base_url(), "https://registry-1.docker.io");
  RegistryOptions insecure = Fast("registry.example:5000");
  insecure.insecure = true;
  EXPECT_EQ(RegistryClient(insecure).base_url(), "http://registry.example:5000");
}

TEST(RegistryClient, FetchesManifestByTagAndDigest) {
  FakeFixture f;
  RegistryClient c(Fast(f.server->host()));
  auto m = c.GetManifest("team/app", "v1");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->bytes, f.manifest);
  EXPECT_EQ(m->digest, Sha256Of(f.manifest));
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_TRUE(c.GetManifest("team/app", m->digest.str()).ok());
  // The Accept header names all four manifest types.
  EXPECT_TRUE(c.Ping().ok());
}

// This server answers a Range from 0 with 200 and the whole blob, and any other with 206 up to
// the blob's end: the client keeps exactly the bytes it asked for either way.
TEST(RegistryClient, BlobRangeIsTheBytesAskedForWhateverTheServerSends) {
  FakeFixture f;
  RegistryClient c(Fast(f.server->host()));
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 1000}, {123456, 777}, {f.blob.size() - 10, 10}}) {
    auto r = c.GetBlobRange("team/app", f.blob_digest, off, len);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, f.blob.substr(off, len)) << "from " << off;
  }
  EXPECT_EQ(f.reg.blob_gets, 3);
  EXPECT_TRUE(c.GetBlobRange("team/app", f.blob_digest, 5, 0)->empty());
}

TEST(RegistryClient, BlobRangeResumesAfterACutAndGivesUpWhenTheRegistryIsGone) {
  FakeFixture f;
  f.reg.SetFault(f.blob_digest.str(), FakeRegistry::Fault::kCutOnce);  // cut at the blob's half
  RegistryClient c(Fast(f.server->host()));
  uint64_t from = f.blob.size() / 2 - 1000;
  auto r = c.GetBlobRange("team/app", f.blob_digest, from, 3000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, f.blob.substr(from, 3000));
  EXPECT_EQ(f.reg.cuts, 1);
  EXPECT_EQ(f.reg.blob_gets, 2);
  std::string host = f.server->host();
  f.server.reset();
  auto gone = RegistryClient(Fast(host)).GetBlobRange("team/app", f.blob_digest, 0, 10);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("after 3 attempts"), std::string::npos) << gone.status().message();
}

TEST(RegistryClient, UnknownManifestIsENOENTWithTheRegistrysWords) {
  FakeFixture f;
  RegistryClient c(Fast(f.server->host()));
  auto m = c.GetManifest("team/app", "nope");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ENOENT);
  EXPECT_NE(m.status().message().find("manifest unknown"), std::string::npos) << m.status().message();
}

TEST(RegistryClient, ManifestWhoseBytesDoNotMatchTheDigestIsRefused) {
  FakeFixture f;
  std::string fake_digest = Sha256Of("something else").str();
  f.reg.manifests[fake_digest] = f.manifest;
  RegistryClient c(Fast(f.server->host()));
  auto m = c.GetManifest("team/app", fake_digest);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("digest mismatch"), std::string::npos);
}

TEST(RegistryClient, BlobDownloadResumesWithRangeAfterACut) {
  FakeFixture f;
  f.reg.SetFault(FakeRegistry::Fault::kCutOnce);
  RegistryClient c(Fast(f.server->host()));
  std::string got;
  Status st = f.Fetch(c, &got);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, f.blob);
  EXPECT_EQ(f.reg.cuts, 1);
  EXPECT_EQ(f.reg.blob_gets, 2);  // the second asked only for the rest
}

TEST(RegistryClient, BlobCutEveryTimeFailsAfterRetries) {
  FakeFixture f;
  f.reg.SetFault(FakeRegistry::Fault::kCutAlways);
  RegistryClient c(Fast(f.server->host()));
  std::string got;
  Status st = f.Fetch(c, &got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), EIO);
  EXPECT_NE(st.message().find("after 3 attempts"), std::string::npos) << st.message();
  EXPECT_EQ(got, f.blob.substr(0, f.blob.size() / 2));  // resumed, never past the cut
}

TEST(RegistryClient, ServerErrorsAreRetriedThenReported) {
  FakeFixture f;
  f.reg.SetFault(FakeRegistry::Fault::kServerError);
  RegistryClient c(Fast(f.server->host()));
  std::string got;
  Status st = f.Fetch(c, &got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(f.reg.blob_gets, 3);
  EXPECT_NE(st.message().find("HTTP 503"), std::string::npos) << st.message();
}

TEST(RegistryClient, SinkErrorStopsTheTransferWithoutRetry) {
  FakeFixture f;
  RegistryClient c(Fast(f.server->host()));
  Status st = c.GetBlob("team/app", f.blob_digest, f.blob.size(),
                        [](const char*, size_t) { return Status::Error(ENOSPC, "disk full"); });
  EXPECT_EQ(st.code(), ENOSPC);
  EXPECT_EQ(f.reg.blob_gets, 1);
}

TEST(RegistryClient, BlobLongerThanItsDescriptorIsRefused) {
  FakeFixture f;
  RegistryClient c(Fast(f.server->host()));
  Status st = c.GetBlob("team/app", f.blob_digest, 1000, [](const char*, size_t) { return Status::Ok(); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("more bytes"), std::string::npos) << st.message();
}

TEST(RegistryClient, RegistryDownIsConnectionRefused) {
  int port;
  {
    LoopbackHttpServer s([](const auto&) { return LoopbackHttpServer::Reply{}; });
    port = s.port();
  }  // closed: nobody listens there now
  RegistryClient c(Fast("127.0.0.1:" + std::to_string(port)));
  auto m = c.GetManifest("team/app", "v1");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ECONNREFUSED);
  EXPECT_NE(m.status().message().find("after 3 attempts"), std::string::npos) << m.status().message();
}

// Upload side of the API: a session that answers 503 once, then takes PATCH chunks (checking
// their Content-Range) and a final PUT with the digest.
TEST(RegistryClient, ChunkedUploadRetriesAfterAServerError) {
  TempDir dir;
  std::string blob = Pseudo(200000);
  Digest digest = Sha256Of(blob);
  std::ofstream(dir.path() / "blob", std::ios::binary) << blob;
  std::string received;
  std::vector<std::string> ranges;
  int posts = 0;
  bool put_ok = false;
  LoopbackHttpServer server([&](const LoopbackHttpServer::Request& r) {
    using Reply = LoopbackHttpServer::Reply;
    if (r.method == "POST") {
      if (++posts == 1) return Reply{503, {}, "try later"};
      received.clear();
      return Reply{202, {{"Location", "/v2/team/app/blobs/uploads/s1?_state=x"}}, ""};
    }
    if (r.method == "PATCH" && r.target == "/v2/team/app/blobs/uploads/s1?_state=x") {
      ranges.push_back(r.headers.at("content-range"));
      received += r.body;
      return Reply{202, {{"Location", "/v2/team/app/blobs/uploads/s1?_state=x"}}, ""};
    }
    if (r.method == "PUT" && r.target == "/v2/team/app/blobs/uploads/s1?_state=x&digest=sha256%3A" + digest.hex()) {
      received += r.body;
      put_ok = received == blob;
      return Reply{201, {}, ""};
    }
    return Reply{400, {}, "unexpected " + r.method + " " + r.target};
  });
  RegistryOptions o = Fast(server.host());
  o.chunk_size = 64 << 10;
  RegistryClient c(o);
  uint64_t last_progress = 0;
  Status st = c.UploadBlob("team/app", digest, dir.path() / "blob", [&](uint64_t done) { last_progress = done; });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(posts, 2);
  EXPECT_TRUE(put_ok);
  EXPECT_EQ(ranges, (std::vector<std::string>{"0-65535", "65536-131071", "131072-196607", "196608-199999"}));
  EXPECT_EQ(last_progress, blob.size());
}

// A registry behind a token server: /token hands out a Bearer token for valid Basic credentials.
struct TokenRegistry {
  FakeFixture inner;
  std::vector<std::string> scopes;
  std::unique_ptr<LoopbackHttpServer> server;
  TokenRegistry() {
    server = std::make_unique<LoopbackHttpServer>([this](const LoopbackHttpServer::Request& r) {
      using Reply = LoopbackHttpServer::Reply;
      if (r.target.starts_with("/token")) {
        auto auth = r.headers.find("authorization");
        if (auth == r.headers.end() || auth->second != "Basic " + Base64Encode("tok:en")) return Reply{401, {}, "{}"};
        scopes.push_back(r.target);
        return Reply{200, {}, R"({"token":"t0k3n","expires_in":300})"};
      }
      auto auth = r.headers.find("authorization");
      if (auth == r.headers.end() || auth->second != "Bearer t0k3n")
        return Reply{401,
                     {{"WWW-Authenticate", "Bearer realm=\"http://" + server->host() +
                                               "/token\",service=\"fake\",scope=\"repository:team/app:pull\""}},
                     R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
      return inner.reg.Handle(r);
    });
  }
};

TEST(RegistryClient, BearerTokenFromTheChallengesRealm) {
  TokenRegistry t;
  RegistryOptions o = Fast(t.server->host());
  o.credentials = {"tok", "en"};
  RegistryClient c(o);
  auto m = c.GetManifest("team/app", "v1");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::string got;
  ASSERT_TRUE(t.inner.Fetch(c, &got).ok());
  EXPECT_EQ(got, t.inner.blob);
  ASSERT_EQ(t.scopes.size(), 1u);  // the token is reused for the same scope
  EXPECT_NE(t.scopes[0].find("service=fake"), std::string::npos);
  EXPECT_NE(t.scopes[0].find("scope=repository%3Ateam%2Fapp%3Apull"), std::string::npos) << t.scopes[0];
}

TEST(RegistryClient, BearerWithWrongCredentialsIsUnauthorized) {
  TokenRegistry t;
  RegistryOptions o = Fast(t.server->host());
  o.credentials = {"tok", "wrong"};
  RegistryClient c(o);
  auto m = c.GetManifest("team/app", "v1");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), EACCES);
  EXPECT_NE(m.status().message().find("unauthorized"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace layerfs
