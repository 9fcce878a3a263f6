// `layerfs load` of a hostile docker-archive / oci-archive: LoadImages into a fresh store.
// The archive is written by this target from the input, so the fuzzer mutates what an archive
// holds (manifest.json, index.json, repositories, configs, layer tars), not tar checksums.
//
// Input: entries separated by kEntrySeparator; each is "<name>\n<content>". A name
// "a -> b" makes a symlink a to b; the name "@blob" stores the content at
// blobs/sha256/<its sha256>, so digests in the seeds stay valid while other entries mutate.
#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <vector>

#include "layerstore/archive/image_load.h"
#include "layerstore/store/store.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

using namespace layerfs;

constexpr std::string_view kEntrySeparator = "\n--8<--\n";

struct ArchiveEntry {
  std::string name;
  std::string symlink;
  std::string_view content;
};

ArchiveEntry ParseEntry(std::string_view part) {
  size_t eol = part.find('\n');
  std::string name(part.substr(0, eol));
  std::string_view content = eol == std::string_view::npos ? std::string_view() : part.substr(eol + 1);
  if (name == "@blob") return {"blobs/sha256/" + Sha256Of(content).hex(), "", content};
  if (size_t arrow = name.find(" -> "); arrow != std::string::npos)
    return {name.substr(0, arrow), name.substr(arrow + 4), {}};
  return {name, "", content};
}

std::vector<ArchiveEntry> SplitEntries(std::string_view text) {
  std::vector<ArchiveEntry> entries;
  while (!text.empty()) {
    size_t sep = text.find(kEntrySeparator);
    entries.push_back(ParseEntry(text.substr(0, sep)));
    if (sep == std::string_view::npos) break;
    text.remove_prefix(sep + kEntrySeparator.size());
  }
  return entries;
}

void WriteArchive(const std::filesystem::path& file, const std::vector<ArchiveEntry>& entries) {
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  if (archive_write_open_filename(a.get(), file.c_str()) != ARCHIVE_OK) std::abort();
  for (const ArchiveEntry& e : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), e.name.c_str());
    archive_entry_set_perm(entry.get(), 0644);
    if (!e.symlink.empty()) {
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_symlink(entry.get(), e.symlink.c_str());
    } else {
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.content.size()));
    }
    // Names libarchive refuses (empty, too long for the format) are skipped, as a tool would.
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) continue;
    if (!e.content.empty()) archive_write_data(a.get(), e.content.data(), e.content.size());
  }
  archive_write_close(a.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ClearScratch();
  auto input = fuzz::ScratchDir() / "image.tar";
  WriteArchive(input, SplitEntries(fuzz::AsText(data, size)));
  auto store = Store::Open(fuzz::ScratchDir() / "store");
  if (!store.ok()) std::abort();
  (void)LoadImages(*store, input, LoadOptions{});
  return 0;
}
