#include "tests/tools/registry_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

extern char** environ;

namespace layerfs::testing {

namespace {

namespace stdfs = std::filesystem;

std::string RunCapture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool WriteFile(const stdfs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary);
  out << bytes;
  return static_cast<bool>(out);
}

std::string Config(const stdfs::path& dir, int port, const LocalRegistry::Options& options) {
  std::string c =
      "version: 0.1\n"
      "log:\n  level: error\n  accesslog:\n    disabled: " +
      std::string(options.access_log ? "false" : "true") +
      "\n"
      "storage:\n  filesystem:\n    rootdirectory: " +
      (dir / "storage").string() +
      "\n"
      "  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:" +
      std::to_string(port) + "\n  secret: layerfs-test-secret\n";
  if (options.htpasswd) c += "auth:\n  htpasswd:\n    realm: layerfs-test\n    path: " + (dir / "htpasswd").string() + "\n";
  return c;
}

}  // namespace

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "no free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool PortAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool LocalRegistry::Available() {
  return ::access("/usr/bin/docker-registry", X_OK) == 0 && ::access("/usr/bin/htpasswd", X_OK) == 0;
}

std::unique_ptr<LocalRegistry> LocalRegistry::Start(const Options& options, std::string* error) {
  std::unique_ptr<LocalRegistry> r(new LocalRegistry());
  r->options_ = options;
  char tmpl[] = "/tmp/layerfs-registry-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  r->dir_ = tmpl;
  if (options.htpasswd) {
    std::string line = RunCapture("htpasswd -Bbn '" + options.username + "' '" + options.password + "'");
    if (line.find(':') == std::string::npos || !WriteFile(r->dir_ / "htpasswd", line)) {
      *error = "htpasswd -Bbn failed";
      return nullptr;
    }
  }
  for (int tries = 0; tries < 5 && r->pid_ < 0; ++tries) {
    r->port_ = FreeLoopbackPort();
    WriteFile(r->dir_ / "config.yml", Config(r->dir_, r->port_, options));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string log = (r->dir_ / "registry.log").string();
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::string cfg = (r->dir_ / "config.yml").string();
    const char* argv[] = {"/usr/bin/docker-registry", "serve", cfg.c_str(), nullptr};
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      *error = "cannot start docker-registry";
      return nullptr;
    }
    for (int i = 0; i < 200 && !PortAccepts(r->port_); ++i) {
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) break;  // died (port taken?): try another port
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (PortAccepts(r->port_)) r->pid_ = pid;
    else {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  if (r->pid_ < 0) {
    *error = "docker-registry did not come up: " + r->Log();
    return nullptr;
  }
  return r;
}

LocalRegistry::~LocalRegistry() {
  Stop();
  std::error_code ec;
  if (!dir_.empty()) stdfs::remove_all(dir_, ec);
}

void LocalRegistry::Stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
}

std::string LocalRegistry::Log() const {
  std::ifstream in(dir_ / "registry.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t LocalRegistry::CountInLog(const std::string& needle) const {
  std::string log = Log();
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace layerfs::testing
