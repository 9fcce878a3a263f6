#include "layerstore/lazy/lazy_tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/sysmacros.h>

#include <memory>

#include "layerstore/base/unique_fd.h"
#include "layerstore/layer/tree_writer.h"

namespace layerfs {

namespace {

using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

mode_t FileType(const std::string& type) {
  if (type == "dir") return AE_IFDIR;
  if (type == "symlink") return AE_IFLNK;
  if (type == "char") return AE_IFCHR;
  if (type == "block") return AE_IFBLK;
  if (type == "fifo") return AE_IFIFO;
  return AE_IFREG;  // reg, and hardlink (a tar hard link is a regular entry with a link name)
}

// The tar header the TOC entry describes.
EntryPtr HeaderOf(const EstargzTocEntry& t) {
  EntryPtr e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), t.name.c_str());
  archive_entry_set_filetype(e.get(), FileType(t.type));
  archive_entry_set_perm(e.get(), t.mode & 07777);
  archive_entry_set_uid(e.get(), t.uid);
  archive_entry_set_gid(e.get(), t.gid);
  archive_entry_set_mtime(e.get(), t.mtime_sec, t.mtime_nsec);
  if (t.type == "reg") archive_entry_set_size(e.get(), static_cast<la_int64_t>(t.size));
  if (t.type == "symlink") archive_entry_set_symlink(e.get(), t.link_name.c_str());
  if (t.type == "hardlink") archive_entry_set_hardlink(e.get(), t.link_name.c_str());
  if (t.type == "char" || t.type == "block") archive_entry_set_rdev(e.get(), makedev(t.dev_major, t.dev_minor));
  for (const auto& [name, value] : t.xattrs) archive_entry_xattr_add_entry(e.get(), name.c_str(), value.data(), value.size());
  return e;
}

// The TOC member holds the TOC's tar entry (then the tar's end): written as unpacking would.
Status AddTocEntry(std::string_view toc_member, TreeWriter* writer) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  archive_entry* e = nullptr;
  if (archive_read_open_memory(a.get(), toc_member.data(), toc_member.size()) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &e) != ARCHIVE_OK)
    return Status::Error(EINVAL, "eStargz TOC member is not a tar entry");
  return writer->Add(a.get(), e);
}

}  // namespace

Result<LayerIndex> BuildLazyTree(const EstargzToc& toc, std::string_view toc_member,
                                 const std::filesystem::path& tree_dir) {
  UniqueFd tree_fd(::open(tree_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!tree_fd.valid()) return Status::FromErrno("lazy tree " + tree_dir.string());
  LayerIndex index;
  TreeWriter writer(tree_fd.get(), &index);
  for (const EstargzTocEntry& t : toc.entries) {
    if (t.type == "chunk") continue;
    RETURN_IF_ERROR(writer.AddWithoutData(HeaderOf(t).get()));
  }
  RETURN_IF_ERROR(AddTocEntry(toc_member, &writer));
  RETURN_IF_ERROR(writer.Finish());
  return index;
}

}  // namespace layerfs
