// Registry credentials and authentication challenges.
//
// Credentials live where `docker login` keeps them: the "auths" map of
// $DOCKER_CONFIG/config.json (default ~/.docker/config.json), each entry {"auth":
// base64("user:password")}, keyed by registry host ("127.0.0.1:5000"; Docker Hub as
// "https://index.docker.io/v1/"). Docker and layerfs therefore share logins. Credential helpers
// ("credsStore", "credHelpers") are not consulted. The file is rewritten atomically, mode 0600,
// keeping every other key it holds.
//
// A registry answers 401 with `WWW-Authenticate: Basic realm=...` (htpasswd) or
// `Bearer realm=...,service=...,scope=...` (token server); ParseChallenge reads either.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "layerstore/base/base64.h"
#include "layerstore/base/status.h"

namespace layerfs {

struct Credentials {
  std::string username;
  std::string password;
  bool empty() const { return username.empty() && password.empty(); }
};

struct AuthChallenge {
  std::string scheme;                         // lowercase: "basic" or "bearer"
  std::map<std::string, std::string> params;  // realm, service, scope, ...
};

// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.
std::filesystem::path DockerConfigPath();
// The "auths" key for a registry host as Docker writes it.
std::string CredentialKey(std::string_view registry);

// No entry: empty Credentials. A malformed file or entry is an error naming the file.
Result<Credentials> LoadCredentials(std::string_view registry);
Status StoreCredentials(std::string_view registry, const Credentials& creds);
// Returns false when there was nothing to remove.
Result<bool> RemoveCredentials(std::string_view registry);

std::optional<AuthChallenge> ParseChallenge(std::string_view header);
// The "token" (or "access_token") of a token server's JSON answer.
Result<std::string> ParseTokenResponse(std::string_view body);

}  // namespace layerfs
