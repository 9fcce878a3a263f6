#include "layerstore/registry/registry_auth.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "layerstore/store/store.h"

namespace layerfs {

namespace {

using nlohmann::json;
namespace stdfs = std::filesystem;

Result<json> ReadConfig(const stdfs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return json::object();
    return Status::FromErrno("read " + file.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json doc = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Status::Error(EINVAL, file.string() + ": not a JSON object");
  return doc;
}

Status WriteConfig(const stdfs::path& file, const json& doc) {
  std::error_code ec;
  stdfs::create_directories(file.parent_path(), ec);
  if (ec) return Status::Error(ec.value(), "create " + file.parent_path().string() + ": " + ec.message());
  stdfs::path tmp = file;
  tmp += ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // litter of an earlier run with our pid
  return WriteFileAtomicVia(tmp, file, doc.dump(1, '\t') + "\n", 0600);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Docker keys entries by host, sometimes written as a URL ("https://host/v1/").
std::string HostOfKey(std::string_view key) {
  if (auto p = key.find("://"); p != std::string_view::npos) key.remove_prefix(p + 3);
  if (auto p = key.find('/'); p != std::string_view::npos) key = key.substr(0, p);
  return std::string(key);
}

const json* FindEntry(const json& auths, std::string_view registry) {
  std::string want = HostOfKey(CredentialKey(registry));
  for (auto it = auths.begin(); it != auths.end(); ++it)
    if (HostOfKey(it.key()) == want && it.value().is_object()) return &it.value();
  return nullptr;
}

}  // namespace

stdfs::path DockerConfigPath() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir && *dir) return stdfs::path(dir) / "config.json";
  const char* home = std::getenv("HOME");
  return stdfs::path(home && *home ? home : "/") / ".docker" / "config.json";
}

std::string CredentialKey(std::string_view registry) {
  if (registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io")
    return "https://index.docker.io/v1/";
  return std::string(registry);
}

Result<Credentials> LoadCredentials(std::string_view registry) {
  stdfs::path file = DockerConfigPath();
  ASSIGN_OR_RETURN(json doc, ReadConfig(file));
  if (!doc.contains("auths") || !doc["auths"].is_object()) return Credentials{};
  const json* entry = FindEntry(doc["auths"], registry);
  if (entry == nullptr) return Credentials{};
  std::string bad = file.string() + ": malformed credentials for " + std::string(registry);
  if (entry->contains("username") && entry->contains("password") && (*entry)["username"].is_string())
    return Credentials{(*entry)["username"].get<std::string>(), (*entry)["password"].get<std::string>()};
  if (!entry->contains("auth") || !(*entry)["auth"].is_string()) return Credentials{};
  auto decoded = Base64Decode((*entry)["auth"].get<std::string>());
  if (!decoded.ok()) return Status::Error(EINVAL, bad);
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return Status::Error(EINVAL, bad);
  return Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

Status StoreCredentials(std::string_view registry, const Credentials& creds) {
  stdfs::path file = DockerConfigPath();
  ASSIGN_OR_RETURN(json doc, ReadConfig(file));
  if (!doc.contains("auths") || !doc["auths"].is_object()) doc["auths"] = json::object();
  doc["auths"][CredentialKey(registry)] = {{"auth", Base64Encode(creds.username + ":" + creds.password)}};
  return WriteConfig(file, doc);
}

Result<bool> RemoveCredentials(std::string_view registry) {
  stdfs::path file = DockerConfigPath();
  ASSIGN_OR_RETURN(json doc, ReadConfig(file));
  if (!doc.contains("auths") || !doc["auths"].is_object()) return false;
  std::string want = HostOfKey(CredentialKey(registry));
  std::vector<std::string> keys;
  for (auto it = doc["auths"].begin(); it != doc["auths"].end(); ++it)
    if (HostOfKey(it.key()) == want) keys.push_back(it.key());
  if (keys.empty()) return false;
  for (const std::string& k : keys) doc["auths"].erase(k);
  RETURN_IF_ERROR(WriteConfig(file, doc));
  return true;
}

// Grammar (RFC 7235): scheme SP param=value *("," param=value), values quoted or bare.
std::optional<AuthChallenge> ParseChallenge(std::string_view header) {
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t start = i;
  while (i < header.size() && header[i] != ' ') ++i;
  if (i == start) return std::nullopt;
  AuthChallenge c{Lower(header.substr(start, i - start)), {}};
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    size_t eq = header.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key = Lower(header.substr(i, eq - i));
    std::string value;
    i = eq + 1;
    if (i < header.size() && header[i] == '"') {
      for (++i; i < header.size() && header[i] != '"'; ++i) {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i];
      }
      ++i;
    } else {
      size_t end = header.find(',', i);
      if (end == std::string_view::npos) end = header.size();
      value = std::string(header.substr(i, end - i));
      i = end;
    }
    c.params[key] = value;
  }
  return c;
}

Result<std::string> ParseTokenResponse(std::string_view body) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_object()) {
    for (const char* key : {"token", "access_token"})
      if (doc.contains(key) && doc[key].is_string() && !doc[key].get<std::string>().empty())
        return doc[key].get<std::string>();
  }
  return Status::Error(EPROTO, "token server answer has no token");
}

}  // namespace layerfs
