#include "layerstore/build/user_db.h"

#include <charconv>
#include <optional>

namespace layerfs {

namespace {

std::vector<std::vector<std::string>> Records(std::string_view text) {
  std::vector<std::vector<std::string>> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields;
    size_t start = 0;
    for (size_t colon; (colon = line.find(':', start)) != std::string_view::npos; start = colon + 1)
      fields.emplace_back(line.substr(start, colon - start));
    fields.emplace_back(line.substr(start));
    out.push_back(std::move(fields));
  }
  return out;
}

std::optional<uint32_t> Number(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

struct Passwd {
  std::string name;
  uint32_t uid = 0, gid = 0;
  std::string home;
};

std::optional<Passwd> FindUser(std::string_view passwd, std::string_view who) {
  std::optional<uint32_t> want = Number(who);
  for (const auto& f : Records(passwd)) {
    if (f.size() < 4) continue;
    auto uid = Number(f[2]);
    auto gid = Number(f[3]);
    if (!uid || !gid) continue;
    if (want ? *uid != *want : f[0] != who) continue;
    return Passwd{f[0], *uid, *gid, f.size() > 5 && !f[5].empty() ? f[5] : "/"};
  }
  return std::nullopt;
}

Result<uint32_t> FindGroup(std::string_view group, std::string_view who) {
  if (auto n = Number(who)) return *n;
  for (const auto& f : Records(group))
    if (f.size() >= 3 && f[0] == who)
      if (auto gid = Number(f[2])) return *gid;
  return Status::Error(ENOENT, "unable to find group " + std::string(who) + ": no matching entries in the image's /etc/group");
}

std::vector<uint32_t> MemberOf(std::string_view group, const std::string& user) {
  std::vector<uint32_t> out;
  for (const auto& f : Records(group)) {
    if (f.size() < 4) continue;
    std::string_view members = f[3];
    while (!members.empty()) {
      size_t comma = members.find(',');
      if (members.substr(0, comma) == user)
        if (auto gid = Number(f[2])) out.push_back(*gid);
      members.remove_prefix(comma == std::string_view::npos ? members.size() : comma + 1);
    }
  }
  return out;
}

std::string FileOrEmpty(const ChainView& image, std::string_view path) {
  auto text = image.ReadFile(path);
  return text.ok() ? *text : std::string();
}

}  // namespace

Result<UserIdentity> ResolveUserIn(std::string_view passwd, std::string_view group, std::string_view spec) {
  size_t colon = spec.find(':');
  std::string_view user = spec.substr(0, colon);
  UserIdentity id;
  if (user.empty()) user = "0";
  auto entry = FindUser(passwd, user);
  if (entry) {
    id.uid = entry->uid;
    id.gid = entry->gid;
    id.home = entry->home;
    id.groups = MemberOf(group, entry->name);
  } else if (auto n = Number(user)) {
    id.uid = *n;
  } else {
    return Status::Error(ENOENT, "unable to find user " + std::string(user) + ": no matching entries in the image's /etc/passwd");
  }
  if (colon != std::string_view::npos) {
    ASSIGN_OR_RETURN(id.gid, FindGroup(group, spec.substr(colon + 1)));
  }
  return id;
}

Result<Ownership> ResolveChownIn(std::string_view passwd, std::string_view group, std::string_view spec) {
  size_t colon = spec.find(':');
  std::string_view user = spec.substr(0, colon);
  Ownership own;
  if (auto n = Number(user)) {
    own.uid = *n;
  } else if (auto entry = FindUser(passwd, user)) {
    own.uid = entry->uid;
  } else {
    return Status::Error(ENOENT, "--chown=" + std::string(spec) + ": no user " + std::string(user) + " in the image's /etc/passwd");
  }
  own.gid = own.uid;
  if (colon != std::string_view::npos) {
    auto gid = FindGroup(group, spec.substr(colon + 1));
    if (!gid.ok()) return gid.status().WithContext("--chown=" + std::string(spec));
    own.gid = *gid;
  }
  return own;
}

Result<UserIdentity> ResolveUser(const ChainView& image, std::string_view spec) {
  return ResolveUserIn(FileOrEmpty(image, "etc/passwd"), FileOrEmpty(image, "etc/group"), spec);
}

Result<Ownership> ResolveChown(const ChainView& image, std::string_view spec) {
  return ResolveChownIn(FileOrEmpty(image, "etc/passwd"), FileOrEmpty(image, "etc/group"), spec);
}

}  // namespace layerfs
