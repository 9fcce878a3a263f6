#include "layerstore/registry/registry_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "layerstore/base/unique_fd.h"
#include "layerstore/registry/curl_library.h"
#include "layerstore/registry/http_headers.h"

namespace layerfs {

struct RegistryClient::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercase; last value wins
  std::string body;                            // non-2xx bodies, or all when no sink
};

struct RegistryClient::Request {
  std::string method = "GET";
  std::string url;
  std::string scope;  // Bearer scope(s), space separated
  std::vector<std::string> headers;
  const std::string* body = nullptr;  // or a file range:
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_len = 0;
  // 2xx bodies go here instead of Response::body; sees the response head first.
  std::function<Status(const Response& head, const char* data, size_t len)> sink;
  TransferProgress upload_progress;
  bool transient = false;  // set by a failed Perform: worth retrying
};

namespace {

using nlohmann::json;

constexpr size_t kMaxErrorBody = 64 << 10;
const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

std::string HostOnly(std::string_view registry) {
  if (!registry.empty() && registry.front() == '[') return std::string(registry.substr(1, registry.find(']') - 1));
  if (std::count(registry.begin(), registry.end(), ':') > 1) return std::string(registry);  // bare IPv6
  return std::string(registry.substr(0, registry.find(':')));
}

struct Transfer {
  RegistryClient::Request* req;
  RegistryClient::Response resp;
  const CurlLibrary* lib;
  CURL* curl;
  Status sink_status;
  uint64_t sent = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* opaque) {
  auto* t = static_cast<Transfer*>(opaque);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    t->resp.headers.clear();  // a new response (after a redirect or 100-continue)
  } else if (auto header = ParseHeaderLine(line)) {
    t->resp.headers[header->first] = std::move(header->second);
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* opaque) {
  auto* t = static_cast<Transfer*>(opaque);
  size_t len = size * n;
  long code = 0;
  t->lib->easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (t->req->sink && (code == 200 || code == 206)) {
    t->resp.status = code;
    t->sink_status = t->req->sink(t->resp, data, len);
    return t->sink_status.ok() ? len : 0;
  }
  if (t->resp.body.size() < kMaxErrorBody) t->resp.body.append(data, std::min(len, kMaxErrorBody));
  return len;
}

size_t OnRead(char* buf, size_t size, size_t n, void* opaque) {
  auto* t = static_cast<Transfer*>(opaque);
  RegistryClient::Request& req = *t->req;
  size_t want = std::min<uint64_t>(size * n, req.body_len - t->sent);
  if (want == 0) return 0;
  if (req.body != nullptr) {
    std::memcpy(buf, req.body->data() + t->sent, want);
  } else {
    ssize_t got = ::pread(req.body_fd, buf, want, static_cast<off_t>(req.body_offset + t->sent));
    if (got <= 0) return CURL_READFUNC_ABORT;
    want = static_cast<size_t>(got);
  }
  t->sent += want;
  if (req.upload_progress) req.upload_progress(t->sent);
  return want;
}

bool TransientCurlError(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

int ErrnoOfCurl(CURLcode rc) {
  if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) return ECONNREFUSED;
  if (rc == CURLE_OPERATION_TIMEDOUT) return ETIMEDOUT;
  return EIO;
}

bool TransientHttp(long status) { return status >= 500 || status == 429; }

// The registry's own words: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}.
std::string RegistryMessage(const RegistryClient::Response& resp) {
  json doc = json::parse(resp.body, nullptr, false);
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() && !doc["errors"].empty()) {
    const json& e = doc["errors"][0];
    if (e.contains("message") && e["message"].is_string() && !e["message"].get<std::string>().empty())
      return e["message"].get<std::string>();
    if (e.contains("code") && e["code"].is_string()) return Lower(e["code"].get<std::string>());
  }
  if (resp.status == 404) return "not found";
  if (resp.status == 401) return "unauthorized";
  return "HTTP " + std::to_string(resp.status);
}

Status HttpError(const RegistryClient::Request& req, const RegistryClient::Response& resp) {
  int code = resp.status == 404 ? ENOENT : (resp.status == 401 || resp.status == 403) ? EACCES
                                                                                      : EPROTO;
  return Status::Error(code, RegistryMessage(resp) + " (HTTP " + std::to_string(resp.status) + " from " +
                                 req.method + " " + req.url + ")");
}

Status AfterAttempts(const Status& st, int attempts) {
  return Status::Error(st.code(), st.message() + " (after " + std::to_string(attempts) + " attempts)");
}

std::string PullScope(const std::string& repo) { return "repository:" + repo + ":pull"; }
std::string PushScope(const std::string& repo) { return "repository:" + repo + ":pull,push"; }

// Percent-encodes all but RFC 3986's unreserved characters, for query values.
std::string Escape(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string WithQuery(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

}  // namespace

bool IsLoopbackRegistry(std::string_view registry) {
  std::string host = HostOnly(registry);
  return host == "localhost" || host == "127.0.0.1" || host == "::1" || host.starts_with("127.");
}

RegistryClient::RegistryClient(RegistryOptions options) : options_(std::move(options)) {
  host_ = options_.registry == "docker.io" ? "registry-1.docker.io" : options_.registry;
  plain_http_ = options_.insecure || IsLoopbackRegistry(host_);
  if (options_.max_attempts < 1) options_.max_attempts = 1;
}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::base_url() const { return (plain_http_ ? "http://" : "https://") + host_; }
std::string RegistryClient::Url(const std::string& path) const { return base_url() + path; }

std::string RegistryClient::ResolveLocation(const std::string& location) const {
  if (location.starts_with("http://") || location.starts_with("https://")) return location;
  return base_url() + (location.starts_with("/") ? "" : "/") + location;
}

void RegistryClient::Backoff(int attempt) const {
  std::this_thread::sleep_for(options_.backoff * (1 << std::min(attempt - 1, 6)));
}

Result<RegistryClient::Response> RegistryClient::Perform(Request& req) {
  ASSIGN_OR_RETURN(const CurlLibrary* lib, LoadCurl());
  std::unique_ptr<CURL, void (*)(CURL*)> curl(lib->easy_init(), lib->easy_cleanup);
  if (!curl) return Status::Error(ENOMEM, "curl_easy_init failed");
  Transfer t{&req, {}, lib, curl.get(), {}, 0};
  char errbuf[CURL_ERROR_SIZE] = "";
  CURL* c = curl.get();
  lib->easy_setopt(c, CURLOPT_URL, req.url.c_str());
  lib->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  lib->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  lib->easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.method == "GET" || req.method == "HEAD" ? 1L : 0L);
  lib->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
  lib->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled connection counts as cut
  lib->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
  lib->easy_setopt(c, CURLOPT_USERAGENT,
                   "layerfs/"
                   "0.1");
  lib->easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  lib->easy_setopt(c, CURLOPT_HEADERDATA, &t);
  lib->easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  lib->easy_setopt(c, CURLOPT_WRITEDATA, &t);
  lib->easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
  if (req.method == "HEAD") {
    lib->easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.body != nullptr || req.body_fd >= 0 || req.method != "GET") {
    lib->easy_setopt(c, CURLOPT_UPLOAD, 1L);
    lib->easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    lib->easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_len));
    lib->easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
    lib->easy_setopt(c, CURLOPT_READDATA, &t);
  }
  curl_slist* headers = lib->slist_append(nullptr, "Expect:");
  for (const std::string& h : req.headers) headers = lib->slist_append(headers, h.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(headers, lib->slist_free_all);
  lib->easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = lib->easy_perform(c);
  req.transient = false;
  if (!t.sink_status.ok()) return t.sink_status;
  if (rc != CURLE_OK) {
    req.transient = TransientCurlError(rc);
    std::string why = errbuf[0] ? errbuf : lib->easy_strerror(rc);
    return Status::Error(ErrnoOfCurl(rc), req.method + " " + req.url + ": " + why);
  }
  lib->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.resp.status);
  return std::move(t.resp);
}

std::string RegistryClient::AuthHeaderFor(const std::string& scope) {
  std::lock_guard lk(mu_);
  if (auto it = tokens_.find(scope); it != tokens_.end()) return "Authorization: " + it->second;
  if (!basic_header_.empty()) return "Authorization: " + basic_header_;
  return "";
}

Result<std::string> RegistryClient::FetchToken(const std::map<std::string, std::string>& params,
                                               const std::string& scope) {
  auto realm = params.find("realm");
  if (realm == params.end()) return Status::Error(EPROTO, "Bearer challenge without realm from " + host_);
  std::string url = realm->second;
  std::string query;
  if (auto s = params.find("service"); s != params.end()) query += "service=" + Escape(s->second);
  size_t start = 0;
  while (start < scope.size()) {
    size_t end = scope.find(' ', start);
    if (end == std::string::npos) end = scope.size();
    if (end > start) query += std::string(query.empty() ? "" : "&") + "scope=" + Escape(scope.substr(start, end - start));
    start = end + 1;
  }
  Request req;
  req.url = query.empty() ? url : WithQuery(url, query);
  if (!options_.credentials.empty())
    req.headers.push_back("Authorization: Basic " +
                          Base64Encode(options_.credentials.username + ":" + options_.credentials.password));
  ASSIGN_OR_RETURN(Response resp, Perform(req));
  if (resp.status == 401 || resp.status == 403)
    return Status::Error(EACCES, "unauthorized: token server " + url + " refused the credentials for " + host_);
  if (resp.status != 200) return HttpError(req, resp);
  ASSIGN_OR_RETURN(std::string token, ParseTokenResponse(resp.body));
  return "Bearer " + token;
}

Status RegistryClient::Authenticate(const Request& req, const Response& resp) {
  auto header = resp.headers.find("www-authenticate");
  std::optional<AuthChallenge> challenge;
  if (header != resp.headers.end()) challenge = ParseChallenge(header->second);
  if (!challenge) return Status::Error(EACCES, "unauthorized: " + host_ + " refused " + req.method + " " + req.url);
  if (challenge->scheme == "basic") {
    if (options_.credentials.empty())
      return Status::Error(EACCES, "unauthorized: " + options_.registry +
                                       " requires authentication (run `layerfs login " + options_.registry + "`)");
    std::lock_guard lk(mu_);
    basic_header_ = "Basic " + Base64Encode(options_.credentials.username + ":" + options_.credentials.password);
    return Status::Ok();
  }
  if (challenge->scheme != "bearer")
    return Status::Error(EACCES, host_ + ": unsupported authentication scheme " + challenge->scheme);
  std::string scope = req.scope;
  if (auto s = challenge->params.find("scope"); s != challenge->params.end() && scope.empty()) scope = s->second;
  ASSIGN_OR_RETURN(std::string token, FetchToken(challenge->params, scope));
  std::lock_guard lk(mu_);
  tokens_[req.scope] = std::move(token);
  return Status::Ok();
}

Result<RegistryClient::Response> RegistryClient::SendOnce(Request& req) {
  std::vector<std::string> base_headers = req.headers;
  auto with_auth = [&] {
    req.headers = base_headers;
    if (std::string auth = AuthHeaderFor(req.scope); !auth.empty()) req.headers.push_back(auth);
  };
  with_auth();
  ASSIGN_OR_RETURN(Response resp, Perform(req));
  if (resp.status != 401) {
    req.headers = base_headers;
    return resp;
  }
  RETURN_IF_ERROR(Authenticate(req, resp));
  with_auth();
  auto again = Perform(req);
  req.headers = base_headers;
  if (again.ok() && again->status == 401) {
    std::string who = options_.credentials.empty() ? "anonymous access refused"
                                                   : "incorrect username or password for " + options_.credentials.username;
    return Status::Error(EACCES, "unauthorized: " + options_.registry + ": " + who);
  }
  return again;
}

Result<RegistryClient::Response> RegistryClient::Send(Request& req) {
  for (int attempt = 1;; ++attempt) {
    auto resp = SendOnce(req);
    bool retry = resp.ok() ? TransientHttp(resp->status) : req.transient;
    if (!retry || attempt >= options_.max_attempts) {
      if (!resp.ok() && retry)
        return AfterAttempts(resp.status(), attempt);
      return resp;
    }
    Backoff(attempt);
  }
}

Status RegistryClient::Ping() {
  Request req;
  req.url = Url("/v2/");
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status != 200) return HttpError(req, resp);
  return Status::Ok();
}

Result<FetchedManifest> RegistryClient::GetManifest(const std::string& repo, const std::string& reference) {
  Request req;
  req.url = Url("/v2/" + repo + "/manifests/" + reference);
  req.scope = PullScope(repo);
  req.headers.push_back(kManifestAccept);
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status != 200) return HttpError(req, resp);
  FetchedManifest m;
  m.bytes = std::move(resp.body);
  m.digest = Sha256Of(m.bytes);
  m.media_type = resp.headers["content-type"];
  if (auto semi = m.media_type.find(';'); semi != std::string::npos) m.media_type = Trim(m.media_type.substr(0, semi));
  json doc = json::parse(m.bytes, nullptr, false);
  if (!doc.is_object()) return Status::Error(EINVAL, "manifest " + repo + ":" + reference + " is not JSON");
  if (doc.contains("mediaType") && doc["mediaType"].is_string()) m.media_type = doc["mediaType"].get<std::string>();
  if (reference.starts_with("sha256:") && m.digest.str() != reference)
    return Status::Error(EINVAL, "manifest " + reference + ": digest mismatch (got " + m.digest.str() + ")");
  return m;
}

Result<std::optional<Digest>> RegistryClient::HeadManifest(const std::string& repo, const std::string& reference) {
  Request req;
  req.method = "HEAD";
  req.url = Url("/v2/" + repo + "/manifests/" + reference);
  req.scope = PullScope(repo);
  req.headers.push_back(kManifestAccept);
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status == 404) return std::optional<Digest>();
  if (resp.status != 200) return HttpError(req, resp);
  auto d = Digest::Parse(resp.headers["docker-content-digest"]);
  if (!d.ok()) return Status::Error(EPROTO, "HEAD " + req.url + ": no Docker-Content-Digest");
  return std::optional<Digest>(*d);
}

Result<Digest> RegistryClient::PutManifest(const std::string& repo, const std::string& reference,
                                           const std::string& media_type, const std::string& bytes) {
  Request req;
  req.method = "PUT";
  req.url = Url("/v2/" + repo + "/manifests/" + reference);
  req.scope = PushScope(repo);
  req.headers.push_back("Content-Type: " + media_type);
  req.body = &bytes;
  req.body_len = bytes.size();
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status != 201 && resp.status != 200) return HttpError(req, resp);
  Digest local = Sha256Of(bytes);
  auto reported = Digest::Parse(resp.headers["docker-content-digest"]);
  if (reported.ok() && *reported != local)
    return Status::Error(EPROTO, "registry stored manifest as " + reported->str() + ", expected " + local.str());
  return local;
}

// One GET from *offset on; advances *offset by every byte handed to sink, and stops at `end`
// (0: the blob's end) whatever the server sends beyond it.
Status RegistryClient::GetBlobAttempt(Request& req, uint64_t* offset, uint64_t end, uint64_t size,
                                      const BlobSink& sink) {
  uint64_t skip = 0;
  bool head_checked = false;
  const std::string what = req.url;
  req.sink = [&](const Response& head, const char* data, size_t len) -> Status {
    if (!head_checked) {
      head_checked = true;
      if (head.status == 200) {
        skip = *offset;  // the server ignored Range: drop what we already have
      } else {
        auto cr = head.headers.find("content-range");
        uint64_t start = cr == head.headers.end() ? 0 : ContentRangeStart(cr->second);
        if (start != *offset)
          return Status::Error(EPROTO, "GET " + what + ": asked for bytes from " + std::to_string(*offset) +
                                           ", got from " + std::to_string(start));
      }
    }
    size_t drop = static_cast<size_t>(std::min<uint64_t>(skip, len));
    skip -= drop;
    data += drop;
    len -= drop;
    if (len == 0) return Status::Ok();
    if (size != 0 && *offset + len > size)
      return Status::Error(EINVAL, "GET " + what + ": more bytes than the " + std::to_string(size) +
                                       " the manifest declares");
    if (end != 0) len = static_cast<size_t>(std::min<uint64_t>(len, end - *offset));
    RETURN_IF_ERROR(sink(data, len));
    *offset += len;
    // Ends the transfer (a 200 would send the whole blob); the caller sees *offset == end.
    if (*offset == end) return Status::Error(ECANCELED, "range complete");
    return Status::Ok();
  };
  auto resp = SendOnce(req);
  if (end != 0 && *offset == end) return Status::Ok();
  if (!resp.ok()) return resp.status();
  if (resp->status == 416 && size != 0 && *offset == size) return Status::Ok();
  if (resp->status != 200 && resp->status != 206) {
    req.transient = TransientHttp(resp->status);
    return HttpError(req, *resp);
  }
  uint64_t want = end != 0 ? end : size;
  if (want != 0 && *offset < want) {
    req.transient = true;
    return Status::Error(EIO, "GET " + what + ": connection closed at byte " + std::to_string(*offset) +
                                  " of the " + std::to_string(want) + " asked for");
  }
  return Status::Ok();
}

Status RegistryClient::GetBlob(const std::string& repo, const Digest& digest, uint64_t size, const BlobSink& sink) {
  return GetBlobBytes(repo, digest, 0, 0, size, sink);
}

Result<std::string> RegistryClient::GetBlobRange(const std::string& repo, const Digest& digest, uint64_t offset,
                                                 uint64_t length) {
  std::string out;
  if (length == 0) return out;
  out.reserve(length);
  RETURN_IF_ERROR(GetBlobBytes(repo, digest, offset, offset + length, 0, [&](const char* data, size_t len) {
    out.append(data, len);
    return Status::Ok();
  }));
  return out;
}

// From `offset` to `end` (0: the blob's end), resuming after a cut where it stopped.
Status RegistryClient::GetBlobBytes(const std::string& repo, const Digest& digest, uint64_t offset, uint64_t end,
                                    uint64_t size, const BlobSink& sink) {
  for (int attempt = 1;; ++attempt) {
    Request req;
    req.url = Url("/v2/" + repo + "/blobs/" + digest.str());
    req.scope = PullScope(repo);
    if (offset > 0 || end != 0)
      req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-" + (end != 0 ? std::to_string(end - 1) : ""));
    uint64_t before = offset;
    Status st = GetBlobAttempt(req, &offset, end, size, sink);
    if (st.ok() || !req.transient) return st;
    if (offset > before) attempt = 1;  // progress: the connection works, start counting again
    if (attempt >= options_.max_attempts)
      return AfterAttempts(st, options_.max_attempts);
    Backoff(attempt);
  }
}

Result<bool> RegistryClient::HasBlob(const std::string& repo, const Digest& digest) {
  Request req;
  req.method = "HEAD";
  req.url = Url("/v2/" + repo + "/blobs/" + digest.str());
  req.scope = PullScope(repo);
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return HttpError(req, resp);
}

Result<bool> RegistryClient::MountBlob(const std::string& repo, const Digest& digest, const std::string& from_repo) {
  Request req;
  req.method = "POST";
  req.url = Url("/v2/" + repo + "/blobs/uploads/?mount=" + digest.str() + "&from=" + from_repo);
  req.scope = PushScope(repo) + " " + PullScope(from_repo);
  ASSIGN_OR_RETURN(Response resp, Send(req));
  if (resp.status == 201) return true;
  if (resp.status != 202) return HttpError(req, resp);
  // Declined: the registry opened an upload session instead; close it.
  Request cancel;
  cancel.method = "DELETE";
  cancel.url = ResolveLocation(resp.headers["location"]);
  cancel.scope = req.scope;
  (void)SendOnce(cancel);
  return false;
}

// One upload session. *transient tells the caller whether starting over may help.
Status RegistryClient::UploadOnce(const std::string& repo, const Digest& digest, const std::filesystem::path& file,
                                  uint64_t size, const TransferProgress& progress, bool* transient) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("open " + file.string());
  std::string scope = PushScope(repo);
  // Sends one request of the session and checks its status; the Location it returns is next.
  auto step = [&](Request& req, long want) -> Result<std::string> {
    req.scope = scope;
    auto resp = SendOnce(req);
    if (!resp.ok()) {
      *transient = req.transient;
      return resp.status();
    }
    if (resp->status != want) {
      *transient = TransientHttp(resp->status);
      return HttpError(req, *resp);
    }
    return ResolveLocation(resp->headers["location"]);
  };
  Request start;
  start.method = "POST";
  start.url = Url("/v2/" + repo + "/blobs/uploads/");
  ASSIGN_OR_RETURN(std::string location, step(start, 202));
  uint64_t offset = 0;
  while (size > options_.chunk_size && offset < size) {
    uint64_t len = std::min<uint64_t>(options_.chunk_size, size - offset);
    Request patch;
    patch.method = "PATCH";
    patch.url = location;
    patch.headers = {"Content-Type: application/octet-stream",
                     "Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + len - 1)};
    patch.body_fd = fd.get();
    patch.body_offset = offset;
    patch.body_len = len;
    if (progress) patch.upload_progress = [&, base = offset](uint64_t sent) { progress(base + sent); };
    ASSIGN_OR_RETURN(location, step(patch, 202));
    offset += len;
  }
  Request put;  // the rest of the bytes (all of them when monolithic) and the digest
  put.method = "PUT";
  put.url = WithQuery(location, "digest=" + Escape(digest.str()));
  put.headers = {"Content-Type: application/octet-stream"};
  put.body_fd = fd.get();
  put.body_offset = offset;
  put.body_len = size - offset;
  if (progress) put.upload_progress = [&, base = offset](uint64_t sent) { progress(base + sent); };
  ASSIGN_OR_RETURN(std::string done, step(put, 201));
  (void)done;
  return Status::Ok();
}

Status RegistryClient::UploadBlob(const std::string& repo, const Digest& digest, const std::filesystem::path& file,
                                  const TransferProgress& progress) {
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return Status::FromErrno("blob " + digest.str());
  for (int attempt = 1;; ++attempt) {
    bool transient = false;
    Status s = UploadOnce(repo, digest, file, static_cast<uint64_t>(st.st_size), progress, &transient);
    if (s.ok() || !transient) return s;
    if (attempt >= options_.max_attempts) return AfterAttempts(s, attempt);
    Backoff(attempt);
  }
}

}  // namespace layerfs
