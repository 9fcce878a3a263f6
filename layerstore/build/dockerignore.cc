#include "layerstore/build/dockerignore.h"

#include <algorithm>
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

Status BadPattern(const std::string& p) { return Status::Error(EINVAL, ".dockerignore: bad pattern \"" + p + "\""); }

}  // namespace

// The text between '[' and ']': a leading '!' or '^' negates; "a-z" is a range; '\' makes the
// next character literal. A range running backwards is an error, as it was for std::regex.
Result<DockerIgnore::GlobToken> DockerIgnore::CompileClass(std::string_view inside) {
  GlobToken t;
  t.kind = GlobToken::kClass;
  if (!inside.empty() && (inside.front() == '!' || inside.front() == '^')) {
    t.negated = true;
    inside.remove_prefix(1);
  }
  for (size_t i = 0; i < inside.size(); ++i) {
    char lo = inside[i] == '\\' && i + 1 < inside.size() ? inside[++i] : inside[i];
    if (i + 2 < inside.size() && inside[i + 1] == '-') {
      char hi = inside[i + 2] == '\\' && i + 3 < inside.size() ? inside[i + 3] : inside[i + 2];
      i += inside[i + 2] == '\\' && i + 3 < inside.size() ? 3 : 2;
      if (static_cast<unsigned char>(hi) < static_cast<unsigned char>(lo)) return BadPattern(std::string(inside));
      t.ranges.emplace_back(lo, hi);
    } else {
      t.chars += lo;
    }
  }
  return t;
}

Result<std::vector<DockerIgnore::GlobToken>> DockerIgnore::Compile(const std::string& p) {
  std::vector<GlobToken> tokens;
  auto add = [&tokens](GlobToken::Kind kind, char c = 0) {
    tokens.emplace_back();
    tokens.back().kind = kind;
    tokens.back().c = c;
  };
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*' && i + 1 < p.size() && p[i + 1] == '*') {
      ++i;
      if (i + 1 < p.size() && p[i + 1] == '/') {
        add(GlobToken::kAnyDirs);
        add(GlobToken::kLiteral, '/');
        ++i;
      } else {
        add(GlobToken::kAnyPath);
      }
    } else if (c == '*') {
      add(GlobToken::kStar);
    } else if (c == '?') {
      add(GlobToken::kAnyChar);
    } else if (c == '\\' && i + 1 < p.size()) {
      add(GlobToken::kLiteral, p[++i]);
    } else if (c == '[') {
      size_t close = p.find(']', i + 1);
      if (close == std::string::npos) return BadPattern(p);
      auto cls = CompileClass(std::string_view(p).substr(i + 1, close - i - 1));
      if (!cls.ok()) return BadPattern(p);
      tokens.push_back(std::move(cls).value());
      i = close;
    } else {
      add(GlobToken::kLiteral, c);
    }
  }
  return tokens;
}

// All positions of the pattern the path's prefix can have reached are kept at once, so a
// pattern of many stars costs no more than one star (std::regex backtracked exponentially).
bool DockerIgnore::Matches(const std::vector<GlobToken>& tokens, std::string_view path) {
  const size_t n = tokens.size();
  // Per position: 0 not reached, kInside reached only inside a "**/" (its skip not taken),
  // kEntered reached with everything that follows from it without reading.
  constexpr char kInside = 1, kEntered = 2;
  std::vector<char> now(n + 1), next(n + 1);
  // Marks position i and those reachable from it without reading: past a star, or past "**/".
  auto reach = [&](std::vector<char>& set, size_t i) {
    while (set[i] != kEntered) {
      set[i] = kEntered;
      if (i == n) return;
      GlobToken::Kind kind = tokens[i].kind;
      if (kind == GlobToken::kAnyDirs) set[i + 1] = kEntered;  // its '/' right away: "**/" as "/"
      if (kind != GlobToken::kStar && kind != GlobToken::kAnyPath && kind != GlobToken::kAnyDirs) return;
      i += kind == GlobToken::kAnyDirs ? 2 : 1;
    }
  };
  auto in_class = [](const GlobToken& t, char c) {
    auto u = static_cast<unsigned char>(c);
    bool in = t.chars.find(c) != std::string::npos;
    for (const auto& [lo, hi] : t.ranges)
      in = in || (static_cast<unsigned char>(lo) <= u && u <= static_cast<unsigned char>(hi));
    return in != t.negated;
  };
  reach(now, 0);
  for (char c : path) {
    std::fill(next.begin(), next.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      if (!now[i]) continue;
      const GlobToken& t = tokens[i];
      switch (t.kind) {
        case GlobToken::kLiteral:
          if (c == t.c) reach(next, i + 1);
          break;
        case GlobToken::kAnyChar:
          if (c != '/') reach(next, i + 1);
          break;
        case GlobToken::kClass:
          if (in_class(t, c)) reach(next, i + 1);
          break;
        case GlobToken::kStar:
          if (c != '/') reach(next, i);
          break;
        case GlobToken::kAnyPath: reach(next, i); break;
        // Inside "**/" once a character is read: more, or its '/'; no longer skipping both.
        case GlobToken::kAnyDirs:
          next[i] = std::max(next[i], kInside);
          next[i + 1] = kEntered;  // a literal '/': nothing follows from it without reading
          break;
      }
    }
    now.swap(next);
  }
  return now[n] != 0;
}

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
    ASSIGN_OR_RETURN(p.tokens, Compile(p.text));
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
      match = Matches(p.tokens, rel_path.substr(0, end));
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
