// SnapshotFilter: containerd's filter language (containerd/filters) over snapshot infos, as
// `ctr snapshots ls` and containerd's metadata layer send it to List: each filter is a comma-
// separated AND of selectors `FIELD`, `FIELD==VALUE`, `FIELD!=VALUE` or `FIELD~=REGEXP`; a list
// of filters is their OR, and an empty list matches everything. Fields: name, parent, kind
// (active, view, committed) and labels.KEY; a field component or value may be quoted with " or
// ' (labels."containerd.io/snapshot.ref"==sha256:...).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/base/status.h"
#include "layerstore/snapshots/snapshot_catalog.h"

namespace re2 {
class RE2;
}

namespace layerfs {

class SnapshotFilter {
 public:
  // EINVAL for a filter that does not parse.
  static Result<SnapshotFilter> Parse(const std::vector<std::string>& filters);
  bool Matches(const SnapshotInfo& info) const;

 private:
  enum class Op { kPresent,
                  kEqual,
                  kNotEqual,
                  kMatch };
  struct Selector {
    std::vector<std::string> field;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const re2::RE2> re;  // RE2: Go's syntax, as containerd's, in linear time
  };
  using Conjunction = std::vector<Selector>;
  static Result<Conjunction> ParseOne(const std::string& text);
  static bool Matches(const Selector& s, const SnapshotInfo& info);

  std::vector<Conjunction> any_of_;
};

}  // namespace layerfs
