// Hard links of a lower layer across copy-up, on real FUSE mounts: every member of the group
// stays one inode after the first write through any of them, also a member inside a lower
// directory that was renamed before (found through the directory's redirect), across a
// remount, and in the layer `commit` writes (tar hard links to one data entry).
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "fs/container/commit_layer.h"
#include "fs/index/merged_index.h"
#include "fs/mount/mount.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/layer_store.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs {
namespace {

namespace stdfs = std::filesystem;
using fstest::DirEntry;
using fstest::FileEntry;
using fstest::HardlinkEntry;
using fstest::Lstat;
using fstest::ReadAll;
using fstest::WriteAll;

// One layer: f, d/h and d/sub/h2 are one inode; d/other is not linked.
class HardlinkCopyUp : public ::testing::Test {
 protected:
  HardlinkCopyUp() : tmp_("layerfs-hardlink") {
    for (const char* d : {"mnt", "upper", "work"}) stdfs::create_directories(tmp_.path() / d);
  }
  ~HardlinkCopyUp() override { Unmount(); }

  void SetUp() override {
    auto store = Store::Open(tmp_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto tar = fstest::BuildLayerTar({FileEntry("f", "lower data"), DirEntry("d"), HardlinkEntry("d/h", "f"), DirEntry("d/sub"),
                                      HardlinkEntry("d/sub/h2", "f"), FileEntry("d/other", "other")});
    ASSERT_TRUE(tar.ok()) << tar.status().message();
    auto diff_id = fstest::AddLayer(*store, *tar);
    ASSERT_TRUE(diff_id.ok()) << diff_id.status().message();
    layers_ = {*diff_id};
  }

  stdfs::path mnt() const { return tmp_.path() / "mnt"; }
  stdfs::path upper() const { return tmp_.path() / "upper"; }

  void Mount() {
    auto m = Mount::Start(fstest::ContainerMountConfig(tmp_.path() / "store", layers_, tmp_.path()));
    ASSERT_TRUE(m.ok()) << m.status().message();
    mount_ = std::move(m).value();
  }
  void Unmount() {
    if (!mount_) return;
    Status st = mount_->Unmount();
    EXPECT_TRUE(st.ok()) << st.message();
    mount_.reset();
  }

  // The three names show one file: same st_ino, nlink 3, the same bytes.
  void ExpectOneInode(const std::vector<std::string>& names, const std::string& content) {
    struct stat first = Lstat(mnt() / names[0]);
    for (const auto& n : names) {
      struct stat st = Lstat(mnt() / n);
      EXPECT_EQ(st.st_ino, first.st_ino) << n;
      EXPECT_EQ(st.st_nlink, 3u) << n;
      EXPECT_EQ(ReadAll(mnt() / n), content) << n;
    }
  }

  // path -> hard-link target ("" for an entry with its own data) of the committed layer;
  // empty (and a test failure) if the commit fails.
  std::map<std::string, std::string> CommitEntries(std::map<std::string, std::string>* data) {
    std::map<std::string, std::string> out;
    auto store = Store::Open(tmp_.path() / "store");
    auto index = store.ok() ? MergedIndex::LoadOrBuild(*store, layers_) : Result<MergedIndex>(store.status());
    auto writer = index.ok() ? BlobStore(*store).NewWriter() : Result<BlobWriter>(index.status());
    if (!writer.ok()) {
      ADD_FAILURE() << writer.status().message();
      return out;
    }
    std::vector<stdfs::path> trees = {store->layer_tree(layers_[0])};
    auto layer = WriteCommitLayer(upper(), *index, trees, &*writer);
    auto blob = layer.ok() ? writer->Commit() : Result<Digest>(layer.status());
    if (!blob.ok()) {
      ADD_FAILURE() << blob.status().message();
      return out;
    }
    archive* in = archive_read_new();
    archive_read_support_filter_all(in);
    archive_read_support_format_tar(in);
    EXPECT_EQ(archive_read_open_filename(in, BlobStore(*store).Path(*blob).c_str(), 1 << 16), ARCHIVE_OK);
    archive_entry* e;
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
      std::string path = archive_entry_pathname(e);
      const char* link = archive_entry_hardlink(e);
      out[path] = link ? link : "";
      std::string bytes(archive_entry_size(e), '\0');
      if (!bytes.empty()) archive_read_data(in, bytes.data(), bytes.size());
      (*data)[path] = bytes;
    }
    archive_read_free(in);
    return out;
  }

  fstest::TempDir tmp_;
  std::vector<Digest> layers_;
  std::unique_ptr<layerfs::Mount> mount_;
};

TEST_F(HardlinkCopyUp, WriteThroughOneMemberShowsInAll) {
  Mount();
  ExpectOneInode({"f", "d/h", "d/sub/h2"}, "lower data");
  WriteAll(mnt() / "d/h", "written via d/h");
  ExpectOneInode({"f", "d/h", "d/sub/h2"}, "written via d/h");
  Unmount();
  Mount();
  ExpectOneInode({"f", "d/h", "d/sub/h2"}, "written via d/h");
}

// The bug this file was written for: d is renamed first, so the members are no longer at
// their lower paths when f is copied up. The kernel knows e/h already (a cached entry).
TEST_F(HardlinkCopyUp, MemberInRenamedDirIsLinkedIn) {
  Mount();
  ASSERT_EQ(::rename((mnt() / "d").c_str(), (mnt() / "e").c_str()), 0);
  EXPECT_EQ(ReadAll(mnt() / "e/h"), "lower data");
  WriteAll(mnt() / "f", "new data");
  ExpectOneInode({"f", "e/h", "e/sub/h2"}, "new data");
  WriteAll(mnt() / "e/sub/h2", "via h2");
  ExpectOneInode({"f", "e/h", "e/sub/h2"}, "via h2");
  EXPECT_EQ(ReadAll(mnt() / "e/other"), "other");
  Unmount();
  Mount();
  ExpectOneInode({"f", "e/h", "e/sub/h2"}, "via h2");
}

// After a remount nothing in memory remembers the rename: the redirect in the upper does.
TEST_F(HardlinkCopyUp, MemberInDirRenamedBeforeRemountIsLinkedIn) {
  Mount();
  ASSERT_EQ(::mkdir((mnt() / "x").c_str(), 0755), 0);
  ASSERT_EQ(::rename((mnt() / "d").c_str(), (mnt() / "x/e").c_str()), 0);
  Unmount();
  Mount();
  WriteAll(mnt() / "f", "after remount");
  ExpectOneInode({"f", "x/e/h", "x/e/sub/h2"}, "after remount");
  std::map<std::string, std::string> data;
  auto entries = CommitEntries(&data);
  // One entry carries the bytes; the other members are tar hard links to it.
  std::vector<std::string> members = {"f", "x/e/h", "x/e/sub/h2"};
  std::string owner;
  for (const auto& m : members) {
    ASSERT_TRUE(entries.count(m)) << m;
    if (entries[m].empty()) owner = m;
  }
  ASSERT_FALSE(owner.empty());
  EXPECT_EQ(data[owner], "after remount");
  for (const auto& m : members) {
    if (m != owner) {
      EXPECT_EQ(entries[m], owner) << m;
    }
  }
}

// Kernel overlayfs records a rename within one directory as a redirect relative to the
// parent's lower directory ("sub", not "/d/sub").
TEST_F(HardlinkCopyUp, MemberFoundThroughRelativeRedirect) {
  Mount();
  ASSERT_EQ(::rename((mnt() / "d/sub").c_str(), (mnt() / "d/sub2").c_str()), 0);
  Unmount();
  std::string key = geteuid() == 0 ? "trusted.overlay.redirect" : "user.overlay.redirect";
  ASSERT_EQ(::lsetxattr((upper() / "d/sub2").c_str(), key.c_str(), "sub", 3, 0), 0);
  Mount();
  WriteAll(mnt() / "f", "relative");
  ExpectOneInode({"f", "d/h", "d/sub2/h2"}, "relative");
}

// As overlayfs, which links members in lazily: the other members' directories still show as
// lower ones (d: nlink 2 + 1 subdir) until something else changes in them; then they are
// merged (nlink 1), their parents too.
TEST_F(HardlinkCopyUp, MemberDirsStayLowerUntilChanged) {
  Mount();
  WriteAll(mnt() / "f", "x");
  EXPECT_EQ(ReadAll(mnt() / "d/sub/h2"), "x");
  EXPECT_EQ(Lstat(mnt() / "d").st_nlink, 3u);
  EXPECT_EQ(Lstat(mnt() / "d/sub").st_nlink, 2u);
  Unmount();
  Mount();
  EXPECT_EQ(Lstat(mnt() / "d").st_nlink, 3u);
  WriteAll(mnt() / "d/sub/new", "new");
  EXPECT_EQ(Lstat(mnt() / "d/sub").st_nlink, 1u);
  EXPECT_EQ(Lstat(mnt() / "d").st_nlink, 1u);
  ExpectOneInode({"f", "d/h", "d/sub/h2"}, "x");
}

// Unlinking a member is a change of its directory: merged from then on.
TEST_F(HardlinkCopyUp, UnlinkOfLinkedMemberMergesItsDir) {
  Mount();
  WriteAll(mnt() / "f", "x");
  EXPECT_EQ(Lstat(mnt() / "d/sub").st_nlink, 2u);
  ASSERT_EQ(::unlink((mnt() / "d/sub/h2").c_str()), 0);
  EXPECT_EQ(Lstat(mnt() / "d/sub").st_nlink, 1u);
  EXPECT_EQ(Lstat(mnt() / "d").st_nlink, 1u);
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 2u);
  EXPECT_EQ(Lstat(mnt() / "d/h").st_nlink, 2u);
}

// Renaming the member itself inside a renamed directory copies the group up first.
TEST_F(HardlinkCopyUp, RenameOfMemberInRenamedDir) {
  Mount();
  ASSERT_EQ(::rename((mnt() / "d").c_str(), (mnt() / "e").c_str()), 0);
  ASSERT_EQ(::rename((mnt() / "e/sub/h2").c_str(), (mnt() / "e/moved").c_str()), 0);
  ExpectOneInode({"f", "e/h", "e/moved"}, "lower data");
  WriteAll(mnt() / "e/moved", "moved");
  ExpectOneInode({"f", "e/h", "e/moved"}, "moved");
  ASSERT_EQ(::unlink((mnt() / "e/h").c_str()), 0);
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 2u);
  EXPECT_EQ(Lstat(mnt() / "e/moved").st_nlink, 2u);
}

// Replacing one link by rename drops the others' nlink, as unlink does; renaming one link of
// a file onto another link of it does nothing (POSIX), even before the group's copy-up.
TEST_F(HardlinkCopyUp, RenameOverMember) {
  Mount();
  ASSERT_EQ(::rename((mnt() / "d/h").c_str(), (mnt() / "f").c_str()), 0);
  ExpectOneInode({"f", "d/h", "d/sub/h2"}, "lower data");
  ASSERT_EQ(::rename((mnt() / "d/other").c_str(), (mnt() / "d/h").c_str()), 0);
  EXPECT_EQ(ReadAll(mnt() / "d/h"), "other");
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 2u);
  EXPECT_EQ(Lstat(mnt() / "d/sub/h2").st_nlink, 2u);
  WriteAll(mnt() / "f", "still linked");
  EXPECT_EQ(ReadAll(mnt() / "d/sub/h2"), "still linked");
  Unmount();
  Mount();
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 2u);
  EXPECT_EQ(Lstat(mnt() / "f").st_ino, Lstat(mnt() / "d/sub/h2").st_ino);
}

// A file replaced by rename under one of its names keeps its other names and its identity:
// a later link shows one inode with the right count.
TEST_F(HardlinkCopyUp, RenameOverOneOfSeveralUpperLinks) {
  Mount();
  ASSERT_EQ(::link((mnt() / "f").c_str(), (mnt() / "g").c_str()), 0);
  ASSERT_EQ(::rename((mnt() / "d/other").c_str(), (mnt() / "g").c_str()), 0);
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 3u);
  ASSERT_EQ(::link((mnt() / "f").c_str(), (mnt() / "n").c_str()), 0);
  EXPECT_EQ(Lstat(mnt() / "f").st_nlink, 4u);
  EXPECT_EQ(Lstat(mnt() / "n").st_ino, Lstat(mnt() / "f").st_ino);
  EXPECT_EQ(Lstat(mnt() / "d/h").st_nlink, 4u);
}

}  // namespace
}  // namespace layerfs
