// Reference: a Docker image reference, normalised the way Docker does it.
//   "redis"                 -> docker.io/library/redis:latest
//   "user/app:1"            -> docker.io/user/app:1
//   "localhost:5000/a"      -> localhost:5000/a:latest
//   "name@sha256:<64 hex>"  -> docker.io/library/name@sha256:... (no default tag)
// The first path component is a registry domain when it contains '.' or ':' or is "localhost".
// Repository path components must be lowercase ([a-z0-9] with '.', '_', '__', '-' separators).
#pragma once

#include <string>
#include <string_view>

#include "layerstore/base/status.h"

namespace layerfs {

struct Reference {
  std::string domain;  // "docker.io", "localhost:5000", "ghcr.io"
  std::string path;    // "library/redis", "user/app"
  std::string tag;     // may be empty when a digest is given
  std::string digest;  // "sha256:<hex>" or empty

  std::string Name() const { return domain + "/" + path; }  // "docker.io/library/redis"
  std::string String() const;                               // full normalised form
  // Docker's familiar short forms: "redis", "user/app", "localhost:5000/a".
  std::string FamiliarName() const;
  std::string FamiliarString() const;  // "redis:latest", "user/app@sha256:..."
};

// Parses and normalises; adds tag "latest" when neither tag nor digest is given.
// Errors (EINVAL) name the input and what is wrong with it.
Result<Reference> ParseReference(std::string_view text);

// Familiar form of an already-normalised reference string ("docker.io/library/redis:latest"
// -> "redis:latest"); returns the input unchanged when it does not parse.
std::string FamiliarString(std::string_view normalized);

}  // namespace layerfs
