#include "tools/progress.h"

#include <fmt/format.h>

namespace layerfs::cli {

namespace {
constexpr int kBarWidth = 50;
constexpr std::chrono::milliseconds kBarInterval(100);
}  // namespace

std::string HumanSize(double bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  size_t u = 0;
  while (bytes >= 1000.0 && u + 1 < std::size(kUnits)) {
    bytes /= 1000.0;
    ++u;
  }
  return fmt::format("{:.4g}{}", bytes, kUnits[u]);
}

std::string ProgressBar(uint64_t current, uint64_t total) {
  if (total == 0) return HumanSize(static_cast<double>(current));
  int filled = static_cast<int>(kBarWidth * std::min<double>(1.0, static_cast<double>(current) / total));
  std::string bar(kBarWidth, ' ');
  for (int i = 0; i < filled; ++i) bar[i] = '=';
  if (filled < kBarWidth) bar[filled] = '>';
  return fmt::format("[{}] {:>8}/{}", bar, HumanSize(static_cast<double>(current)), HumanSize(static_cast<double>(total)));
}

void ProgressPrinter::Handle(const TransferEvent& e) {
  std::lock_guard lk(mu_);
  auto [it, added] = line_of_.try_emplace(e.id, last_status_.size());
  if (added) {
    last_status_.push_back("");
    last_draw_.push_back({});
    if (terminal_) std::fputs("\n", out_);
  }
  size_t line = it->second;
  if (!terminal_) {
    if (last_status_[line] == e.status) return;  // no bars off a terminal
    last_status_[line] = e.status;
    std::fprintf(out_, "%s: %s\n", e.id.c_str(), e.status.c_str());
    std::fflush(out_);
    return;
  }
  auto now = std::chrono::steady_clock::now();
  bool same = last_status_[line] == e.status;
  if (same && e.bar && e.current < e.total && now - last_draw_[line] < kBarInterval) return;
  last_status_[line] = e.status;
  last_draw_[line] = now;
  std::string text = e.id + ": " + e.status;
  if (e.bar) text += " " + ProgressBar(e.current, e.total);
  Redraw(line, text);
}

// The cursor rests below the last layer line; go up to `line`, rewrite it, come back down.
void ProgressPrinter::Redraw(size_t line, const std::string& text) {
  size_t up = last_status_.size() - line;
  std::fprintf(out_, "\x1b[%zuA\r\x1b[2K%s\r\x1b[%zuB", up, text.c_str(), up);
  std::fflush(out_);
}

void ProgressPrinter::Message(const std::string& text) {
  std::lock_guard lk(mu_);
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

}  // namespace layerfs::cli
