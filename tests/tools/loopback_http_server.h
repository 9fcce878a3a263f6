// LoopbackHttpServer: a tiny HTTP/1.1 server for tests, on 127.0.0.1 at a free port, one
// request per connection (it always answers "Connection: close"), served by one thread.
// A handler maps each request to a reply; a reply may cut the connection after N body bytes,
// which is how tests simulate a dropped download. FakeRegistry (below) serves one image's
// manifest and blobs the way the Distribution API does, with Range support and fault knobs.
// Header-only so both test binaries (layerstore_tests, tools_tests) can use it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace layerfs::testing {

class LoopbackHttpServer {
 public:
  struct Request {
    std::string method;
    std::string target;                          // path and query
    std::map<std::string, std::string> headers;  // lowercase names
    std::string body;
  };
  struct Reply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    size_t cut_after = std::string::npos;  // close after this many body bytes (Content-Length stays full)
  };
  using Handler = std::function<Reply(const Request&)>;

  explicit LoopbackHttpServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // A server that cannot listen would make every request of the test time out instead.
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 64) != 0)
      throw std::system_error(errno, std::generic_category(), "loopback test server: bind/listen");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~LoopbackHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // Every request line served so far ("GET /v2/..."), in order.
  std::vector<std::string> log() {
    std::lock_guard lk(mu_);
    return log_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      Serve(c);
      ::close(c);
    }
  }

  static bool ReadRequest(int c, Request* req) {
    std::string buf;
    char tmp[65536];
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    std::string head = buf.substr(0, head_end);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    req->method = first.substr(0, sp1);
    req->target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      if (size_t colon = line.find(':'); colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        req->headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = e + 2;
    }
    req->body = buf.substr(head_end + 4);
    size_t want = req->headers.count("content-length") ? std::stoul(req->headers["content-length"]) : 0;
    while (req->body.size() < want) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      req->body.append(tmp, static_cast<size_t>(n));
    }
    return true;
  }

  static void SendAll(int c, const char* data, size_t len) {
    while (len > 0) {
      ssize_t n = ::send(c, data, len, MSG_NOSIGNAL);
      if (n <= 0) return;
      data += n;
      len -= static_cast<size_t>(n);
    }
  }

  void Serve(int c) {
    Request req;
    if (!ReadRequest(c, &req)) return;
    {
      std::lock_guard lk(mu_);
      log_.push_back(req.method + " " + req.target);
    }
    Reply r = handler_(req);
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " X\r\nConnection: close\r\nContent-Length: " +
                       std::to_string(r.body.size()) + "\r\n";
    for (auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    head += "\r\n";
    SendAll(c, head.data(), head.size());
    if (req.method == "HEAD") return;
    SendAll(c, r.body.data(), std::min(r.body.size(), r.cut_after));
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> log_;
};

// Serves manifests (by tag or digest) and blobs of one repository like a registry would.
struct FakeRegistry {
  enum class Fault { kNone,
                     kCorrupt,
                     kCutOnce,
                     kCutAlways,
                     kServerError };
  std::string repo;
  std::map<std::string, std::string> manifests;  // tag or digest -> bytes
  std::map<std::string, std::string> blobs;      // digest -> bytes
  std::atomic<int> blob_gets{0};
  std::atomic<int> cuts{0};

  // The fault applies to one blob; tests change it between requests while the server runs.
  void SetFault(std::string digest, Fault f) {
    std::lock_guard lock(mu_);
    faulty_blob_ = std::move(digest);
    fault_ = f;
  }
  void SetFault(Fault f) {
    std::lock_guard lock(mu_);
    fault_ = f;
  }
  // Called (on the server thread) before a blob is served; may block to hold the client.
  void SetBeforeBlob(std::function<void(const std::string& digest)> fn) {
    std::lock_guard lock(mu_);
    before_blob_ = std::move(fn);
  }

  LoopbackHttpServer::Reply Handle(const LoopbackHttpServer::Request& req) {
    using Reply = LoopbackHttpServer::Reply;
    if (req.target == "/v2/") return Reply{200, {}, "{}"};
    std::string manifests_prefix = "/v2/" + repo + "/manifests/";
    std::string blobs_prefix = "/v2/" + repo + "/blobs/";
    if (req.target.starts_with(manifests_prefix)) {
      auto it = manifests.find(req.target.substr(manifests_prefix.size()));
      if (it == manifests.end())
        return Reply{404, {{"Content-Type", "application/json"}}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"};
      return Reply{200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, it->second};
    }
    if (req.target.starts_with(blobs_prefix)) {
      std::string digest = req.target.substr(blobs_prefix.size());
      auto it = blobs.find(digest);
      if (it == blobs.end())
        return Reply{404, {}, R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})"};
      ++blob_gets;
      std::unique_lock lock(mu_);
      Fault fault = fault_;
      bool faulty = digest == faulty_blob_;
      auto before_blob = before_blob_;
      lock.unlock();
      if (before_blob) before_blob(digest);
      std::string body = it->second;
      if (faulty && fault == Fault::kServerError) return Reply{503, {}, "busy"};
      if (faulty && fault == Fault::kCorrupt) body[body.size() / 2] ^= 0x55;
      size_t from = 0;
      if (auto r = req.headers.find("range"); r != req.headers.end() && r->second.starts_with("bytes="))
        std::from_chars(r->second.data() + 6, r->second.data() + r->second.size(), from);
      Reply reply{from > 0 ? 206 : 200, {}, body.substr(std::min(from, body.size()))};
      if (from > 0)
        reply.headers.push_back({"Content-Range", "bytes " + std::to_string(from) + "-" + std::to_string(body.size() - 1) +
                                                      "/" + std::to_string(body.size())});
      bool cut = faulty && ((fault == Fault::kCutOnce && cuts == 0) || fault == Fault::kCutAlways);
      if (cut) {
        // Always stop at the same absolute offset: a resume past it gets nothing more.
        size_t half = body.size() / 2;
        reply.cut_after = half > from ? half - from : 0;
        ++cuts;
      }
      return reply;
    }
    return Reply{404, {}, "{}"};
  }

 private:
  std::mutex mu_;
  std::string faulty_blob_;
  Fault fault_ = Fault::kNone;
  std::function<void(const std::string& digest)> before_blob_;
};

}  // namespace layerfs::testing
