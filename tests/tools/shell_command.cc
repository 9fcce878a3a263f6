#include "tests/tools/shell_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace layerfs::testing {

namespace {

std::string ReadAndRemove(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  ::unlink(file.c_str());
  return bytes.str();
}

}  // namespace

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

ShellResult RunShellCommand(const std::string& command) {
  char err_file[] = "/tmp/layerfs-test-stderr-XXXXXX";
  int fd = ::mkstemp(err_file);
  if (fd < 0) return {};
  ::close(fd);
  ShellResult r;
  FILE* p = ::popen(("{ " + command + "\n} 2>" + ShellQuote(err_file)).c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = ReadAndRemove(err_file);
  return r;
}

}  // namespace layerfs::testing
