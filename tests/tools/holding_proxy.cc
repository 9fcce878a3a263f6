#include "tests/tools/holding_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <system_error>

namespace layerfs::testing {

namespace {

constexpr int kPollMs = 50;

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Waits for fd to be readable: true when it is, false on stop.
bool Readable(int fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) > 0) return true;
  }
  return false;
}

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Copies bytes both ways until either side closes.
void Relay(int a, int b, const std::atomic<bool>& stop) {
  char buf[64 << 10];
  while (!stop) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, kPollMs) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0) continue;
      ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
      if (n <= 0 || !WriteAll(p[1 - i].fd, buf, static_cast<size_t>(n))) return;
    }
  }
}

}  // namespace

HoldingProxy::HoldingProxy(int target_port, uint64_t hold_above) : target_port_(target_port), hold_above_(hold_above) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::system_error(errno, std::generic_category(), "holding proxy");
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { Accept(); });
}

HoldingProxy::~HoldingProxy() {
  stop_ = true;
  acceptor_.join();
  for (auto& t : connections_) t.join();
  ::close(listen_fd_);
}

void HoldingProxy::Accept() {
  while (Readable(listen_fd_, stop_)) {
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard lk(mu_);
    connections_.emplace_back([this, client] {
      Serve(client);
      ::close(client);
    });
  }
}

// "range: bytes=A-B" (any case) asking for more than hold_above_ bytes.
bool HoldingProxy::ShouldHold(const std::string& head) const {
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t at = lower.find("\r\nrange: bytes=");
  if (at == std::string::npos) return false;
  const char* p = lower.data() + at + 15;
  const char* end = lower.data() + lower.size();
  uint64_t first = 0, last = 0;
  auto r = std::from_chars(p, end, first);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != '-') return false;
  if (std::from_chars(r.ptr + 1, end, last).ec != std::errc() || last < first) return false;
  return last - first + 1 > hold_above_;
}

void HoldingProxy::Serve(int client) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (!Readable(client, stop_)) return;
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  if (holding_ && ShouldHold(head)) {
    ++held_;
    while (holding_ && !stop_) {
      pollfd p{client, POLLIN, 0};  // the client may give up (or die) meanwhile
      if (::poll(&p, 1, kPollMs) <= 0) continue;
      if (::recv(client, buf, sizeof buf, MSG_PEEK) <= 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
  }
  int target = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(target_port_);
  if (::connect(target, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      WriteAll(target, head.data(), head.size()))
    Relay(client, target, stop_);
  ::close(target);
}

}  // namespace layerfs::testing
