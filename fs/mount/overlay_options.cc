#include "fs/mount/overlay_options.h"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <set>

#include "fs/index/overlay_index_cache.h"

namespace layerfs {

// What each option does (docs/overlay.md has the same table for users).
//
// | option                                | effect                                                  |
// | ------------------------------------- | ------------------------------------------------------- |
// | lowerdir=TOP:...:BOTTOM               | the lower directories (required)                        |
// | upperdir=, workdir=                   | the writable layer (both or neither; neither: read-only) |
// | squash_to_root / squash_to_uid=/gid=  | every entry shows that owner                           |
// | uidmapping=, gidmapping=              | host<->container id ranges (IdMap)                      |
// | static_nlink                          | directories show st_nlink 1                             |
// | allow_other, default_permissions      | as in libfuse (default_permissions is always on)       |
// | fsname=, subtype=                     | names shown in /proc/mounts                             |
// | debug (also -d)                       | libfuse traces on stderr, foreground                    |
// | ro rw suid nosuid dev nodev exec ...  | mount(8)'s generic flags (fs/mount/mount_flags.h)             |
// | allow_root                            | passed to libfuse                                       |
// | context= fscontext= defcontext=       | SELinux labels, passed to the kernel when SELinux is    |
// |   rootcontext=                        |   on; without SELinux there is nothing to label: ignored |
// | noacl                                 | no POSIX ACLs (as root they are on: FUSE_CAP_POSIX_ACL)  |
// | no_open                               | files open and close without a request (LayerFsOptions) |
// | fsync=0, volatile                     | no fsync of copied-up files; the container's fsync,     |
// |                                       |   fdatasync and fsyncdir return at once (LayerFsOptions)|
// | fsync=1                               | the default: copy-up and the container's syncs reach   |
// |                                       |   the upper's disk                                      |
// | xattr_permissions=0|1|2               | force_mask: owners and modes set in the mount live only |
// |                                       |   in security.|user.fuseoverlayfs.override_stat          |
// | index_cache=DIR, noindex_cache        | where the lowers' merged index is kept between mounts   |
// |                                       |   (default OverlayIndexCache::DefaultDir()); none: walk |
// | store=DIR                             | lowers that are layers of the layerfs store DIR          |
// |                                       |   (DIR/layers/<diff_id>/tree) are read from their index  |
// Anything else is an error.

namespace {

namespace fs = std::filesystem;

const std::set<std::string, std::less<>> kSelinuxLabels = {"context", "fscontext", "defcontext", "rootcontext"};

bool SelinuxEnabled() { return ::access("/sys/fs/selinux/enforce", F_OK) == 0; }

std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

// Splits at `sep` outside escapes and double quotes (an SELinux label "s0:c1,c2" holds a
// comma), keeping both (unescaped by the caller).
std::vector<std::string> SplitEscaped(std::string_view text, char sep) {
  std::vector<std::string> parts(1);
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      parts.back() += text.substr(i, 2);
      ++i;
    } else if (text[i] == '"') {
      quoted = !quoted;
      parts.back() += text[i];
    } else if (text[i] == sep && !quoted) {
      parts.emplace_back();
    } else {
      parts.back() += text[i];
    }
  }
  return parts;
}

Status Bad(const std::string& option, const std::string& why) {
  return Status::Error(EINVAL, "option " + option + ": " + why);
}

Result<uint32_t> ParseId(const std::string& option, std::string_view value) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size())
    return Bad(option, "\"" + std::string(value) + "\" is not a uid/gid");
  return v;
}

Result<fs::path> ParseDir(const std::string& option, std::string_view value) {
  if (value.empty()) return Bad(option, "empty path");
  return fs::absolute(Unescape(value)).lexically_normal();
}

// lowerdir=TOP:...:BOTTOM (overlay's order) -> bottom first (the engine's).
Status ParseLowers(const std::string& option, std::string_view value, std::vector<fs::path>* out) {
  std::vector<std::string> parts = SplitEscaped(value, ':');
  out->clear();
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (it->empty()) return Bad(option, "empty directory in the list (data-only lowers \"::\" are not supported)");
    ASSIGN_OR_RETURN(fs::path dir, ParseDir(option, *it));
    out->push_back(std::move(dir));
  }
  return Status::Ok();
}

class Parser {
 public:
  explicit Parser(OverlayOptions* out) : out_(out), c_(out->config) {}

  Status One(const std::string& option) {
    size_t eq = option.find('=');
    std::string name = option.substr(0, eq);
    std::string_view value = eq == std::string::npos ? std::string_view() : std::string_view(option).substr(eq + 1);
    bool has_value = eq != std::string::npos;
    if (name.empty()) return Status::Ok();  // ",," or a trailing comma
    if (has_value) return Valued(option, name, value);
    return Flag(option, name);
  }

 private:
  Status Valued(const std::string& option, const std::string& name, std::string_view value) {
    if (name == "lowerdir") return ParseLowers(option, value, &c_.lower_dirs);
    if (name == "upperdir") return Assign(option, value, &c_.upper_dir);
    if (name == "workdir") return Assign(option, value, &c_.work_dir);
    if (name == "index_cache") return Assign(option, value, &c_.index_cache);
    if (name == "store") return Assign(option, value, &c_.store_root);
    if (name == "squash_to_uid") return AssignId(option, value, &c_.owners.squash_uid);
    if (name == "squash_to_gid") return AssignId(option, value, &c_.owners.squash_gid);
    if (name == "uidmapping") return AssignMap(option, value, &c_.owners.uids);
    if (name == "gidmapping") return AssignMap(option, value, &c_.owners.gids);
    if (name == "fsname") return AssignText(option, value, &c_.fsname);
    if (name == "subtype") return AssignText(option, value, &c_.subtype);
    if (name == "xattr_permissions") {
      if (value != "0" && value != "1" && value != "2") return Bad(option, "expects 0, 1 or 2");
      c_.xattr_permissions = value[0] - '0';
      return Status::Ok();
    }
    if (name == "fsync") {
      c_.sync_upper = value != "0";
      if (value == "0" || value == "1") return Status::Ok();
      return Bad(option, "expects 0 or 1");
    }
    if (kSelinuxLabels.count(name)) {
      if (!SelinuxEnabled()) return Ignore(option);
      c_.fuse_options.push_back(option);
      return Status::Ok();
    }
    return Bad(option, "unknown option (see layerfs overlay --help)");
  }

  Status Flag(const std::string& option, const std::string& name) {
    if (name == "squash_to_root") {
      c_.owners.squash_uid = 0;
      c_.owners.squash_gid = 0;
    } else if (name == "static_nlink") {
      c_.static_nlink = true;
    } else if (name == "allow_other") {
      c_.allow_other = true;
    } else if (name == "default_permissions") {
      c_.default_permissions = true;
    } else if (name == "debug") {
      out_->debug = true;
    } else if (name == "volatile") {
      c_.sync_upper = false;
    } else if (name == "no_open") {
      c_.no_open = true;
    } else if (name == "noacl") {
      c_.posix_acl = false;
    } else if (name == "noindex_cache") {
      c_.index_cache.clear();
    } else if (c_.flags.Parse(name)) {
      // a mount(2) flag: fs/mount/mount_flags.h
    } else if (name == "allow_root") {
      c_.fuse_options.push_back(name);
    } else {
      return Bad(option, "unknown option (see layerfs overlay --help)");
    }
    return Status::Ok();
  }

  Status Assign(const std::string& option, std::string_view value, fs::path* out) {
    ASSIGN_OR_RETURN(*out, ParseDir(option, value));
    return Status::Ok();
  }
  Status AssignId(const std::string& option, std::string_view value, std::optional<uint32_t>* out) {
    ASSIGN_OR_RETURN(uint32_t id, ParseId(option, value));
    *out = id;
    return Status::Ok();
  }
  Status AssignMap(const std::string& option, std::string_view value, IdMap* out) {
    ASSIGN_OR_RETURN(*out, IdMap::Parse(value, "option " + option));
    return Status::Ok();
  }
  Status AssignText(const std::string& option, std::string_view value, std::string* out) {
    if (value.empty() || Unescape(value).find(',') != std::string::npos) return Bad(option, "empty or contains a comma");
    *out = Unescape(value);
    return Status::Ok();
  }
  Status Ignore(const std::string& option) {
    out_->ignored.push_back(option);
    return Status::Ok();
  }

  OverlayOptions* out_;
  MountConfig& c_;
};

Status Check(const MountConfig& c) {
  if (c.lower_dirs.empty()) return Status::Error(EINVAL, "missing option lowerdir=TOP:...:BOTTOM");
  if (c.upper_dir.empty() != c.work_dir.empty())
    return Status::Error(EINVAL, c.upper_dir.empty() ? "workdir= given without upperdir=" : "upperdir= given without workdir=");
  if (!c.upper_dir.empty() && c.upper_dir == c.work_dir) return Status::Error(EINVAL, "upperdir and workdir must differ");
  for (const auto& dir : c.lower_dirs)
    if (!c.upper_dir.empty() && dir == c.upper_dir) return Status::Error(EINVAL, "upperdir " + dir.string() + " is also a lowerdir");
  return Status::Ok();
}

}  // namespace

std::vector<std::string> SplitOverlayOptions(std::string_view text) { return SplitEscaped(text, ','); }

Result<OverlayOptions> ParseOverlayOptions(const std::vector<std::string>& options, const std::string& mountpoint) {
  OverlayOptions out;
  out.config.fsname = "layerfs-overlay";
  out.config.mountpoint = fs::absolute(mountpoint).lexically_normal();
  out.config.rename_copies_subtree = true;
  out.config.index_cache = OverlayIndexCache::DefaultDir();
  Parser parser(&out);
  for (const std::string& option : options) RETURN_IF_ERROR(parser.One(option));
  RETURN_IF_ERROR(Check(out.config));
  out.config.debug = out.debug;
  return out;
}

}  // namespace layerfs
