// RegistryClient: an OCI Distribution (Docker Registry HTTP API v2) client over libcurl.
//
// One client talks to one registry and may be shared by threads (parallel blob transfers):
// every call uses its own curl handle; the auth state (a Basic header, Bearer tokens per scope)
// is shared under a mutex. Authentication is lazy, as Docker does it: a request goes out
// anonymously, and a 401 with `WWW-Authenticate` is answered once, with Basic credentials or a
// Bearer token fetched from the challenge's realm (service, scope).
//
// Transport: https, except plain http for localhost / 127.0.0.1 / ::1 and registries marked
// insecure. "docker.io" is served by registry-1.docker.io.
//
// Failures: connection errors, 5xx and 429 are transient and retried with exponential backoff
// (max_attempts in all); a blob download cut half way resumes where it stopped with an HTTP
// Range request. Errors carry one line naming the method, URL and the registry's own message
// ("manifest unknown"); codes: ENOENT 404, EACCES 401/403, ECONNREFUSED unreachable, EIO cut.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "layerstore/base/digest.h"
#include "layerstore/base/status.h"
#include "layerstore/registry/registry_auth.h"

namespace layerfs {

struct RegistryOptions {
  std::string registry;     // host[:port] as in a reference
  bool insecure = false;    // allow plain http for this registry
  Credentials credentials;  // empty: anonymous
  int max_attempts = 5;
  std::chrono::milliseconds backoff{200};  // doubles after each failed attempt
  uint64_t chunk_size = 16u << 20;         // uploads above this size go as PATCH chunks
};

struct FetchedManifest {
  std::string media_type;
  std::string bytes;  // exactly as served: its sha256 is the manifest digest
  Digest digest;
};

// Receives blob bytes in order. A non-OK status aborts the transfer and is returned as is.
using BlobSink = std::function<Status(const char* data, size_t len)>;
using TransferProgress = std::function<void(uint64_t done)>;

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options);
  ~RegistryClient();

  const std::string& registry() const { return options_.registry; }
  std::string base_url() const;  // "https://host[:port]"

  // GET /v2/: reachability and credentials (a login check).
  Status Ping();

  // reference: a tag or a digest. Accepts OCI index/manifest and Docker list/schema2.
  // A digest reference is verified against the bytes.
  Result<FetchedManifest> GetManifest(const std::string& repo, const std::string& reference);
  // The manifest's digest without its body; nullopt when unknown (404).
  Result<std::optional<Digest>> HeadManifest(const std::string& repo, const std::string& reference);
  // Returns the digest the registry reports (Docker-Content-Digest) or computes.
  Result<Digest> PutManifest(const std::string& repo, const std::string& reference,
                             const std::string& media_type, const std::string& bytes);

  // Streams the blob to sink, resuming with Range after a dropped connection. size: the
  // descriptor's size (more bytes are an error); 0 when unknown.
  Status GetBlob(const std::string& repo, const Digest& digest, uint64_t size, const BlobSink& sink);
  // Bytes [offset, offset + length) of the blob, asked for with one Range request (206),
  // resumed and retried as GetBlob is. A registry that ignores Range (200, the whole blob) is
  // read up to the range's end and cut there. The bytes are not verified: the caller checks
  // them against what it knows (a chunk digest).
  Result<std::string> GetBlobRange(const std::string& repo, const Digest& digest, uint64_t offset, uint64_t length);
  Result<bool> HasBlob(const std::string& repo, const Digest& digest);
  // POST ?mount=&from=: true when the registry mounted it (201), false when it declined.
  Result<bool> MountBlob(const std::string& repo, const Digest& digest, const std::string& from_repo);
  // Uploads the file holding the blob: one PUT when size <= chunk_size, PATCH chunks otherwise.
  Status UploadBlob(const std::string& repo, const Digest& digest, const std::filesystem::path& file,
                    const TransferProgress& progress = {});

  struct Request;
  struct Response;

 private:
  Result<Response> Perform(Request& req);
  Result<Response> Send(Request& req);      // + auth and retries
  Result<Response> SendOnce(Request& req);  // + auth
  Status Authenticate(const Request& req, const Response& challenge_resp);
  Result<std::string> FetchToken(const std::map<std::string, std::string>& params, const std::string& scope);
  std::string AuthHeaderFor(const std::string& scope);
  Status GetBlobBytes(const std::string& repo, const Digest& digest, uint64_t offset, uint64_t end, uint64_t size,
                      const BlobSink& sink);
  Status GetBlobAttempt(Request& req, uint64_t* offset, uint64_t end, uint64_t size, const BlobSink& sink);
  Status UploadOnce(const std::string& repo, const Digest& digest, const std::filesystem::path& file,
                    uint64_t size, const TransferProgress& progress, bool* transient);
  std::string Url(const std::string& path) const;
  std::string ResolveLocation(const std::string& location) const;
  void Backoff(int attempt) const;

  RegistryOptions options_;
  std::string host_;  // the host actually contacted
  bool plain_http_;
  std::mutex mu_;
  std::string basic_header_;                                         // set once a registry asked for Basic
  std::map<std::string, std::string> tokens_;                        // scope -> "Bearer ..."
  std::optional<std::map<std::string, std::string>> bearer_params_;  // realm, service
};

// Whether plain http is allowed for host[:port] without --insecure-registry.
bool IsLoopbackRegistry(std::string_view registry);

}  // namespace layerfs
