// ProgressPrinter: Docker-style per-layer progress for pull and push.
// On a terminal every layer owns one line, rewritten in place with ANSI cursor movement, with
// a bar and byte counts while transferring ("a1b2c3d4e5f6: Downloading [===>   ]  1.2MB/4.5MB").
// Elsewhere (pipes, logs) it prints one plain line per status change and never a bar.
// Handle() is thread-safe: transfer threads call it directly.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "layerstore/base/transfer_progress.h"

namespace layerfs::cli {

class ProgressPrinter {
 public:
  ProgressPrinter(std::FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  void Handle(const TransferEvent& event);
  // Plain message line (not tied to a layer), printed below the layer lines.
  void Message(const std::string& text);

 private:
  void Redraw(size_t line, const std::string& text);

  std::mutex mu_;
  std::FILE* out_;
  bool terminal_;
  std::map<std::string, size_t> line_of_;  // layer id -> line number among the layer lines
  std::vector<std::string> last_status_;
  std::vector<std::chrono::steady_clock::time_point> last_draw_;  // bars redraw at most 10 times/s
};

// Docker's human sizes: 4 significant digits, decimal units ("1.23MB", "512B", "3.5kB").
std::string HumanSize(double bytes);
// "[=====>      ]  1.2MB/4.5MB"
std::string ProgressBar(uint64_t current, uint64_t total);

}  // namespace layerfs::cli
