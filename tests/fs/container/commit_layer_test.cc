// Commit and diff of an upper dir, checked without the layerfs mount: kernel overlayfs writes
// the upper (same on-disk format as layerfs: 0/0 whiteouts, trusted.overlay.opaque/redirect),
// random ops run on it, then
//   - ListUpperChanges must agree with the before/after trees (A/C/D sound and complete);
//   - the committed layer, laid as an overlay lower dir on top of the image's layers, must show
//     exactly the tree the container showed; its diff_id is what core's unpack verifies, it is
//     reproducible, and no store-private xattr is in it.
// Env: LAYERFS_COMMIT_SEEDS (default 30), LAYERFS_COMMIT_OPS (default 60).
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "fs/container/commit_layer.h"
#include "fs/container/upper_changes.h"
#include "fs/index/merged_index.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

// Lays a (gzip) layer blob out as an overlay lower dir; collects every xattr name it carries.
Status ExtractAsOverlayLower(const fs::path& blob, const fs::path& dir, std::set<std::string>* xattr_names) {
  fs::create_directories(dir);
  archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  archive* out = archive_write_disk_new();
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME |
                                          ARCHIVE_EXTRACT_XATTR);
  Status status;
  if (archive_read_open_filename(in, blob.c_str(), 1 << 16) != ARCHIVE_OK)
    status = Status::Error(EIO, std::string("open layer: ") + archive_error_string(in));
  archive_entry* entry;
  while (status.ok() && archive_read_next_header(in, &entry) == ARCHIVE_OK) {
    std::string path = archive_entry_pathname(entry);
    while (!path.empty() && path.back() == '/') path.pop_back();
    const char* name_start = strrchr(path.c_str(), '/');
    std::string base = name_start ? name_start + 1 : path;
    fs::path parent = dir / fs::path(path).parent_path();
    archive_entry_xattr_reset(entry);
    const char* xname;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK) xattr_names->insert(xname);
    if (base == ".wh..wh..opq") {
      fs::create_directories(parent);
      lsetxattr(parent.c_str(), "trusted.overlay.opaque", "y", 1, 0);
      continue;
    }
    if (base.rfind(".wh.", 0) == 0) {
      fs::create_directories(parent);
      mknod((parent / base.substr(4)).c_str(), S_IFCHR, makedev(0, 0));
      continue;
    }
    if (path == "." || path.empty()) {  // the layer's root: the lower dir itself
      lchown(dir.c_str(), archive_entry_uid(entry), archive_entry_gid(entry));
      chmod(dir.c_str(), archive_entry_perm(entry));
      archive_entry_xattr_reset(entry);
      while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK)
        lsetxattr(dir.c_str(), xname, value, size, 0);
      continue;
    }
    archive_entry_set_pathname(entry, (dir / path).c_str());
    if (const char* link = archive_entry_hardlink(entry)) archive_entry_set_hardlink(entry, (dir / link).c_str());
    if (archive_write_header(out, entry) < ARCHIVE_WARN) {
      status = Status::Error(EIO, path + ": " + archive_error_string(out));
      break;
    }
    const void* buf;
    la_int64_t offset;
    while (archive_read_data_block(in, &buf, &size, &offset) == ARCHIVE_OK)
      archive_write_data_block(out, buf, size, offset);
    archive_write_finish_entry(out);
  }
  archive_write_close(out);
  archive_write_free(out);
  archive_read_free(in);
  return status;
}

struct Committed {
  Digest blob, diff_id;
};

Result<Committed> Commit(const Store& store, const fs::path& upper, const MergedIndex& index,
                         const std::vector<fs::path>& trees) {
  ASSIGN_OR_RETURN(BlobWriter writer, BlobStore(store).NewWriter());
  ASSIGN_OR_RETURN(CommittedLayer layer, WriteCommitLayer(upper, index, trees, &writer));
  ASSIGN_OR_RETURN(Digest blob, writer.Commit());
  return Committed{blob, layer.diff_id};
}

bool HasAncestorIn(const std::string& path, const std::set<std::string>& set) {
  for (auto slash = path.rfind('/'); slash != std::string::npos && slash > 0; slash = path.rfind('/', slash - 1))
    if (set.count(path.substr(0, slash))) return true;
  return false;
}

bool SameVisible(const NodeInfo& a, const NodeInfo& b) {
  return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.size == b.size &&
         a.content_sha == b.content_sha && a.link_target == b.link_target && a.xattrs == b.xattrs;
}

// A/C/D against the trees before (image) and after (container).
std::vector<std::string> CheckChanges(const std::vector<UpperChange>& changes, const Tree& before, const Tree& after) {
  std::vector<std::string> errors;
  std::set<std::string> added, changed, deleted;
  for (const auto& c : changes) {
    std::string p = c.path.substr(1);
    bool in_before = before.count(p), in_after = after.count(p);
    if (c.kind == 'A' && (in_before || !in_after)) errors.push_back("A " + c.path + " but before=" + std::to_string(in_before) + " after=" + std::to_string(in_after));
    if (c.kind == 'C' && (!in_before || !in_after)) errors.push_back("C " + c.path + " but before=" + std::to_string(in_before) + " after=" + std::to_string(in_after));
    if (c.kind == 'D' && (!in_before || in_after)) errors.push_back("D " + c.path + " but before=" + std::to_string(in_before) + " after=" + std::to_string(in_after));
    (c.kind == 'A' ? added : c.kind == 'C' ? changed
                                           : deleted)
        .insert(c.path);
  }
  for (const auto& [p, info] : after) {
    std::string slash = "/" + p;
    if (p.empty()) continue;
    if (!before.count(p) && !added.count(slash)) errors.push_back("missing A " + slash);
    if (before.count(p) && !SameVisible(before.at(p), info) && !changed.count(slash))
      errors.push_back("missing C " + slash);
  }
  for (const auto& [p, info] : before) {
    std::string slash = "/" + p;
    if (p.empty() || after.count(p)) continue;
    if (!deleted.count(slash) && !HasAncestorIn(slash, deleted) && !HasAncestorIn(slash, changed))
      errors.push_back("missing D " + slash);
  }
  return errors;
}

class CommitLayer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "kernel overlayfs writes the upper here: needs root";
  }
};

std::string RunSeed(uint64_t seed, int op_count) {
  TempDir tmp("layerfs-commit");
  auto layers = RandomLayers(seed);
  auto store = Store::Open(tmp.path() / "store");
  if (!store.ok()) return store.status().message();
  std::vector<fs::path> lowers, trees;
  std::vector<Digest> diff_ids;
  for (size_t i = 0; i < layers.size(); ++i) {
    lowers.push_back(tmp.path() / ("lower" + std::to_string(i)));
    Status st = WriteOverlayLower(layers[i], lowers.back());
    if (!st.ok()) return st.message();
    auto tar = BuildLayerTar(layers[i]);
    if (!tar.ok()) return tar.status().message();
    auto diff_id = AddLayer(*store, *tar);
    if (!diff_id.ok()) return diff_id.status().message();
    diff_ids.push_back(*diff_id);
    trees.push_back(store->layer_tree(*diff_id));
  }
  auto index = MergedIndex::LoadOrBuild(*store, diff_ids);
  if (!index.ok()) return index.status().message();
  fs::path upper = tmp.path() / "upper", work = tmp.path() / "work", mnt = tmp.path() / "mnt";
  for (const auto& d : {upper, work, mnt}) fs::create_directories(d), chmod(d.c_str(), 0755);

  std::string errors;
  Tree before, after;
  {
    // index=off: the upper alone says what the container holds (with index=on overlayfs also
    // keeps copied-up lower hard links in work/index; layerfs links them into the upper).
    auto m = MountKernelOverlay(lowers, upper, work, mnt, /*index=*/false);
    if (!m.ok()) return m.status().message();
    before = SnapshotTree(mnt, &errors);
    for (const auto& op : RandomOps(seed, op_count, PathsOf(layers))) ApplyOp(mnt, op);
    after = SnapshotTree(mnt, &errors);
    Status st = (*m)->Unmount();
    if (!st.ok()) return st.message();
  }
  std::string failure;
  auto changes = ListUpperChanges(upper, *index);
  if (!changes.ok()) return "diff: " + changes.status().message();
  for (const auto& e : CheckChanges(*changes, before, after)) failure += "  diff: " + e + "\n";

  auto first = Commit(*store, upper, *index, trees);
  if (!first.ok()) return "commit: " + first.status().message();
  auto second = Commit(*store, upper, *index, trees);
  if (!second.ok()) return "commit again: " + second.status().message();
  if (second->diff_id != first->diff_id) failure += "  commit not reproducible (diff_id changed)\n";
  Status st = LayerStore(*store).Ensure({LayerRequest{first->blob, first->diff_id}});
  if (!st.ok()) failure += "  committed layer does not unpack: " + st.message() + "\n";

  if (const char* dump = getenv("LAYERFS_COMMIT_DUMP"))  // a directory to keep each committed layer in
    fs::copy_file(BlobStore(*store).Path(first->blob), fs::path(dump) / ("seed" + std::to_string(seed) + ".tar.gz"),
                  fs::copy_options::overwrite_existing);
  std::set<std::string> xattr_names;
  fs::path committed = tmp.path() / "committed";
  st = ExtractAsOverlayLower(BlobStore(*store).Path(first->blob), committed, &xattr_names);
  if (!st.ok()) return failure + "extract committed layer: " + st.message();
  for (const auto& name : xattr_names)
    if (name.find("overlay.") != std::string::npos || name.find("layerfs.") != std::string::npos ||
        name == "user.containers.override_stat")
      failure += "  private xattr in committed layer: " + name + "\n";
  lowers.push_back(committed);
  fs::path mnt2 = tmp.path() / "mnt2";
  fs::create_directories(mnt2);
  auto m2 = MountKernelOverlay(lowers, "", "", mnt2);  // read-only: the root is the new layer's
  if (!m2.ok()) return failure + m2.status().message();
  Tree image = SnapshotTree(mnt2, &errors);
  (*m2)->Unmount();
  CompareOptions opt;
  opt.merged_dir_nlink_one = true;
  opt.compare_ino_identity = false;     // index=off: broken lower links keep sharing the origin st_ino
  std::vector<std::string> redirected;  // "/dir/" of every renamed lower dir in the upper
  for (const auto& e : fs::recursive_directory_iterator(upper))
    if (e.is_directory() && !e.is_symlink() && lgetxattr(e.path().c_str(), "trusted.overlay.redirect", nullptr, 0) >= 0)
      redirected.push_back("/" + e.path().lexically_relative(upper).string() + "/");
  for (const auto& d : CompareTrees(after, image, opt)) {
    // Known: a lower hard link between a renamed dir's contents and the rest of the image is
    // split by commit (the renamed dir is copied into the new layer; tar links stay in a layer).
    bool split_link = d.find(": nlink: ") != std::string::npos &&
                      std::any_of(redirected.begin(), redirected.end(), [&](const std::string& r) { return d.starts_with(r); });
    if (!split_link) failure += "  committed image differs: " + d + "\n";
  }
  if (!errors.empty()) failure += "  walk errors: " + errors;
  return failure;
}

TEST_F(CommitLayer, CommittedLayerShowsWhatTheContainerShowed) {
  int seeds = EnvInt("LAYERFS_COMMIT_SEEDS", 30), ops = EnvInt("LAYERFS_COMMIT_OPS", 60);
  int failing = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    std::string failure = RunSeed(seed, ops);
    if (failure.empty()) continue;
    ++failing;
    if (failing <= 5) {
      std::string seq;
      for (const auto& op : RandomOps(seed, ops, PathsOf(RandomLayers(seed)))) seq += "    " + Describe(op) + "\n";
      ADD_FAILURE() << "seed " << seed << ":\n"
                    << failure << "  ops:\n"
                    << seq;
    }
  }
  std::printf("commit: %d seeds x %d ops, %d failing\n", seeds, ops, failing);
  EXPECT_EQ(failing, 0);
}

}  // namespace
}  // namespace layerfs::fstest
