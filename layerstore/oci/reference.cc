#include "layerstore/oci/reference.h"

#include <cctype>

#include "layerstore/base/digest.h"

namespace layerfs {

namespace {

constexpr std::string_view kDefaultDomain = "docker.io";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One repository path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool ValidComponent(std::string_view c) {
  size_t i = 0;
  auto run = [&] {
    size_t start = i;
    while (i < c.size() && IsLowerAlnum(c[i])) ++i;
    return i > start;
  };
  if (!run()) return false;
  while (i < c.size()) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (!run()) return false;
  }
  return true;
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t[0])) return false;
  for (char c : t)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

bool ValidDomain(std::string_view d) {
  if (d.empty()) return false;
  for (char c : d)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']')
      return false;
  return true;
}

bool LooksLikeDomain(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost";
}

bool HasUpper(std::string_view s) {
  for (char c : s)
    if (std::isupper(static_cast<unsigned char>(c))) return true;
  return false;
}

Status Invalid(std::string_view text, const std::string& why) {
  return Status::Error(EINVAL, "invalid reference format \"" + std::string(text) + "\": " + why);
}

Status SplitDomain(std::string_view text, std::string_view name, Reference* ref) {
  size_t slash = name.find('/');
  if (slash != std::string_view::npos && LooksLikeDomain(name.substr(0, slash))) {
    ref->domain = std::string(name.substr(0, slash));
    ref->path = std::string(name.substr(slash + 1));
    if (!ValidDomain(ref->domain)) return Invalid(text, "bad registry host \"" + ref->domain + "\"");
  } else {
    ref->domain = std::string(kDefaultDomain);
    ref->path = std::string(name);
  }
  if (ref->domain == "index.docker.io") ref->domain = std::string(kDefaultDomain);
  if (ref->domain == kDefaultDomain && ref->path.find('/') == std::string::npos) ref->path = "library/" + ref->path;
  return Status::Ok();
}

Status CheckPath(std::string_view text, const std::string& path) {
  if (HasUpper(path)) return Invalid(text, "repository name must be lowercase");
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view comp = std::string_view(path).substr(start, end == std::string::npos ? end : end - start);
    if (!ValidComponent(comp)) return Invalid(text, "bad repository name component \"" + std::string(comp) + "\"");
    if (end == std::string::npos) return Status::Ok();
    start = end + 1;
  }
}

bool IsFullHexId(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string Reference::FamiliarName() const {
  if (domain != kDefaultDomain) return Name();
  if (path.rfind("library/", 0) == 0 && path.find('/', 8) == std::string::npos) return path.substr(8);
  return path;
}

std::string Reference::FamiliarString() const {
  std::string out = FamiliarName();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

Result<Reference> ParseReference(std::string_view text) {
  if (text.empty()) return Invalid(text, "empty reference");
  if (IsFullHexId(text)) return Invalid(text, "cannot use a 64-character hexadecimal string as a name");
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    auto d = Digest::Parse(rest.substr(at + 1));
    if (!d.ok()) return Invalid(text, "bad digest \"" + std::string(rest.substr(at + 1)) + "\"");
    ref.digest = d->str();
    rest = rest.substr(0, at);
  }
  size_t colon = rest.rfind(':');
  size_t last_slash = rest.rfind('/');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!ValidTag(ref.tag)) return Invalid(text, "bad tag \"" + ref.tag + "\"");
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "missing repository name");
  RETURN_IF_ERROR(SplitDomain(text, rest, &ref));
  RETURN_IF_ERROR(CheckPath(text, ref.path));
  if (ref.Name().size() > 255) return Invalid(text, "repository name longer than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string FamiliarString(std::string_view normalized) {
  auto ref = ParseReference(normalized);
  return ref.ok() ? ref->FamiliarString() : std::string(normalized);
}

}  // namespace layerfs
