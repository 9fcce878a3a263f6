// LocalRegistry: Debian's docker-registry (CNCF distribution) running for one test on
// 127.0.0.1 at a free port, with a temporary config and storage directory, optionally behind
// htpasswd basic auth (users made with `htpasswd -Bbn`). Stopped by PID (SIGTERM, then
// SIGKILL) and its directory removed when the object dies. Blobs are stored as files under
// dir()/storage (the distribution filesystem driver), where a test may tamper with them.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

namespace layerfs::testing {

class LocalRegistry {
 public:
  struct Options {
    bool htpasswd = false;
    std::string username = "tester";
    std::string password = "s3cret-pass";
    bool access_log = false;  // one line per request in Log(), for tests that count them
  };
  // nullptr (and a reason in *error) when the registry cannot start.
  static std::unique_ptr<LocalRegistry> Start(const Options& options, std::string* error);
  static bool Available();  // docker-registry (and htpasswd) installed
  ~LocalRegistry();
  // Stops the registry now (one that goes away under a client); its directory stays.
  void Stop();

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  const Options& options() const { return options_; }
  std::string Log() const;  // the registry's output, for failure messages
  // Occurrences of needle in the access log (Options::access_log: one line per request).
  size_t CountInLog(const std::string& needle) const;
  // GETs so far of repo's blob `digest` ("sha256:<hex>"), whole or Range.
  size_t BlobGets(const std::string& repo, const std::string& digest) const {
    return CountInLog("\"GET /v2/" + repo + "/blobs/" + digest);
  }

 private:
  LocalRegistry() = default;
  std::filesystem::path dir_;
  Options options_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 nobody listens on right now.
int FreeLoopbackPort();
// Whether something accepts connections on 127.0.0.1:port.
bool PortAccepts(int port);

}  // namespace layerfs::testing
