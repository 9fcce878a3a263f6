#include "fs/container/upper_changes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <set>

#include "fs/container/upper_listing.h"
#include "layerstore/base/unique_fd.h"

namespace layerfs {

namespace {

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

class ChangeWalker {
 public:
  explicit ChangeWalker(const MergedIndex& image) : image_(image), format_(geteuid() == 0) {}

  // rel: the directory's path in the container; source: the lower dir whose entries show
  // through in it (none when opaque or new); moved: source is not the image's dir at rel.
  Status WalkDir(int dirfd, const std::string& rel, std::optional<uint32_t> shown_source, bool moved) {
    ASSIGN_OR_RETURN(UpperListing listing, ListUpperDir(dirfd, format_, "/" + rel));
    const std::optional<uint32_t> source = listing.opaque ? std::nullopt : shown_source;
    std::set<std::string> visible(listing.entries.begin(), listing.entries.end());
    for (const auto& name : listing.entries) RETURN_IF_ERROR(WalkEntry(dirfd, rel, name, source, moved));
    if (source) {
      for (uint32_t child : Children(*source)) {
        std::string name(image_.name(child));
        if (visible.count(name) || listing.whiteouts.count(name)) continue;
        visible.insert(name);
        if (moved) AddLowerSubtree(child, Join(rel, name));
      }
    }
    ListDeleted(rel, visible);
    return Status::Ok();
  }

  std::vector<UpperChange> Take() {
    std::sort(changes_.begin(), changes_.end(),
              [](const UpperChange& a, const UpperChange& b) { return a.path < b.path; });
    return std::move(changes_);
  }

 private:
  Status WalkEntry(int dirfd, const std::string& rel, const std::string& name, std::optional<uint32_t> source,
                   bool moved) {
    std::string path = Join(rel, name);
    Add(path);
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return Status::Ok();
    UniqueFd child(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (child.get() < 0) return Status::FromErrno("open upper dir /" + path);
    std::optional<std::string> redirect = format_.Redirect(child.get());
    std::optional<uint32_t> child_source = image_.LowerDirOf(source, name, redirect);
    return WalkDir(child.get(), path, child_source, moved || redirect.has_value());
  }

  void Add(const std::string& path) { changes_.push_back({image_.LookupPath(path) ? 'C' : 'A', "/" + path}); }

  void AddLowerSubtree(uint32_t node, const std::string& path) {
    Add(path);
    for (uint32_t child : Children(node)) AddLowerSubtree(child, Join(path, image_.name(child)));
  }

  // Image entries of this directory that the container no longer shows.
  void ListDeleted(const std::string& rel, const std::set<std::string>& visible) {
    if (image_.size() == 0) return;
    auto dir = image_.LookupPath(rel);
    if (!dir || !image_.is_dir(*dir)) return;
    for (uint32_t child : Children(*dir)) {
      std::string name(image_.name(child));
      if (!visible.count(name)) changes_.push_back({'D', "/" + Join(rel, name)});
    }
  }

  std::vector<uint32_t> Children(uint32_t dir) const {
    std::vector<uint32_t> out;
    if (!image_.is_dir(dir)) return out;
    const MergedNode& n = image_.node(dir);
    for (uint32_t i = 0; i < n.child_count; ++i) out.push_back(n.first_child + i);
    return out;
  }

  const MergedIndex& image_;
  UpperFormat format_;
  std::vector<UpperChange> changes_;
};

}  // namespace

Result<std::vector<UpperChange>> ListUpperChanges(const std::filesystem::path& upper_dir, const MergedIndex& image) {
  UniqueFd root(open(upper_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return Status::FromErrno("open upper dir " + upper_dir.string());
  ChangeWalker walker(image);
  std::optional<uint32_t> lower_root;
  if (image.size() > 0) lower_root = MergedIndex::kRoot;
  RETURN_IF_ERROR(walker.WalkDir(root.get(), "", lower_root, false));
  return walker.Take();
}

}  // namespace layerfs
