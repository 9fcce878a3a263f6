#include "layerstore/build/dockerignore.h"

#include <fstream>
#include <iterator>

namespace layerfs {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// filepath.Clean for a relative pattern: no "." components, no duplicate or trailing '/'.
std::string CleanPattern(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  std::vector<std::string_view> parts;
  while (!p.empty()) {
    size_t slash = p.find('/');
    std::string_view part = p.substr(0, slash);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  std::string out;
  for (auto part : parts) out += (out.empty() ? "" : "/") + std::string(part);
  return out;
}

void AppendLiteral(std::string* re, char c) {
  if (std::string_view(".^$|()[]{}*+?\\/").find(c) != std::string_view::npos) *re += '\\';
  *re += c;
}

Result<std::regex> PatternRegex(const std::string& p) {
  std::string re;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*' && i + 1 < p.size() && p[i + 1] == '*') {
      ++i;
      if (i + 1 < p.size() && p[i + 1] == '/') {
        ++i;
        re += "(.*/)?";
      } else {
        re += ".*";
      }
    } else if (c == '*') {
      re += "[^/]*";
    } else if (c == '?') {
      re += "[^/]";
    } else if (c == '\\' && i + 1 < p.size()) {
      AppendLiteral(&re, p[++i]);
    } else if (c == '[') {
      size_t close = p.find(']', i + 1);
      if (close == std::string::npos) return Status::Error(EINVAL, ".dockerignore: bad pattern \"" + p + "\"");
      std::string cls = p.substr(i + 1, close - i - 1);
      if (!cls.empty() && cls.front() == '!') cls.front() = '^';
      re += "[" + cls + "]";
      i = close;
    } else {
      AppendLiteral(&re, c);
    }
  }
  try {
    return std::regex(re, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error&) {
    return Status::Error(EINVAL, ".dockerignore: bad pattern \"" + p + "\"");
  }
}

}  // namespace

Result<DockerIgnore> DockerIgnore::Parse(std::string_view text) {
  DockerIgnore out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    Pattern p;
    if (line.front() == '!') {
      p.exception = true;
      line = Trim(line.substr(1));
    }
    p.text = CleanPattern(line);
    if (p.text.empty()) continue;
    ASSIGN_OR_RETURN(p.re, PatternRegex(p.text));
    out.patterns_.push_back(std::move(p));
  }
  return out;
}

Result<DockerIgnore> DockerIgnore::Load(const std::filesystem::path& context_dir) {
  std::ifstream in(context_dir / ".dockerignore", std::ios::binary);
  if (!in) return DockerIgnore();
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Parse(text);
}

bool DockerIgnore::Excluded(std::string_view rel_path) const {
  bool excluded = false;
  for (const Pattern& p : patterns_) {
    bool match = false;
    for (size_t end = 0; !match && end != std::string_view::npos;) {
      end = rel_path.find('/', end + 1);
      std::string prefix(rel_path.substr(0, end));
      match = std::regex_match(prefix, p.re);
    }
    if (match) excluded = !p.exception;
  }
  return excluded;
}

bool DockerIgnore::MayReinclude(std::string_view dir) const {
  std::string under = std::string(dir) + "/";
  for (const Pattern& p : patterns_) {
    if (!p.exception) continue;
    std::string fixed = p.text.substr(0, p.text.find_first_of("*?[\\"));
    if (under.rfind(fixed, 0) == 0 || fixed.rfind(under, 0) == 0) return true;
  }
  return false;
}

}  // namespace layerfs
