#include "layerstore/estargz/estargz_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <set>

namespace layerfs {

namespace {

// Inflates the first gzip member of `in`, dropping `skip` bytes of its output and keeping at
// most `limit` after them. EIO when the member is corrupt or ends before skip + limit when
// `exact`.
Result<std::string> Gunzip(std::string_view in, uint64_t skip, uint64_t limit, bool exact) {
  z_stream z = {};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Status::Error(ENOMEM, "inflateInit");
  std::unique_ptr<z_stream, decltype(&inflateEnd)> guard(&z, inflateEnd);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END && out.size() < limit) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR) return Status::Error(EIO, "truncated gzip member");
    if (rc != Z_OK && rc != Z_STREAM_END) return Status::Error(EIO, "corrupt gzip member");
    size_t n = sizeof buf - z.avail_out;
    size_t drop = static_cast<size_t>(std::min<uint64_t>(skip, n));
    skip -= drop;
    out.append(buf + drop, std::min<uint64_t>(n - drop, limit - out.size()));
  }
  if (exact && out.size() < limit) return Status::Error(EIO, "gzip member ends early");
  return out;
}

// The content of the tar's entry kEstargzTocName, which must come first.
Result<std::string> TocFromTar(const std::string& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK)
    return Status::Error(EINVAL, "eStargz TOC is not a tar entry");
  archive_entry* e = nullptr;
  if (archive_read_next_header(a.get(), &e) != ARCHIVE_OK || archive_entry_pathname(e) == nullptr ||
      CleanName(archive_entry_pathname(e)) != kEstargzTocName || archive_entry_filetype(e) != AE_IFREG)
    return Status::Error(EINVAL, std::string("eStargz TOC entry is not ") + kEstargzTocName);
  la_int64_t size = archive_entry_size(e);
  if (size < 0 || static_cast<uint64_t>(size) > kMaxEstargzTocSize) return Status::Error(EINVAL, "eStargz TOC too big");
  std::string json(static_cast<size_t>(size), '\0');
  if (size > 0 && archive_read_data(a.get(), json.data(), json.size()) != size)
    return Status::Error(EINVAL, "eStargz TOC entry is truncated");
  return json;
}

}  // namespace

Result<EstargzToc> ReadEstargzToc(std::string_view member, uint64_t toc_offset, const Digest& expected) {
  // The member holds the TOC's tar header(s), the JSON and the tar's end blocks.
  ASSIGN_OR_RETURN(std::string tar, Gunzip(member, 0, kMaxEstargzTocSize + (64u << 10), false));
  ASSIGN_OR_RETURN(std::string json, TocFromTar(tar));
  if (!expected.empty() && Sha256Of(json) != expected)
    return Status::Error(EINVAL, "eStargz TOC digest " + Sha256Of(json).str() + " is not the annotated " + expected.str());
  return ParseEstargzToc(json, toc_offset);
}

std::map<std::string, std::vector<EstargzChunk>> EstargzChunks(const EstargzToc& toc, uint64_t toc_offset) {
  std::set<uint64_t> starts = {toc_offset};
  for (const EstargzTocEntry& e : toc.entries)
    if (e.HasData()) starts.insert(e.offset);
  std::map<std::string, std::vector<EstargzChunk>> out;
  uint64_t file_size = 0;
  std::vector<EstargzChunk>* file = nullptr;
  for (const EstargzTocEntry& e : toc.entries) {
    if (!e.HasData()) continue;
    if (e.type == "reg") {
      file_size = e.size;
      file = &out[CleanName(e.name)];
      file->clear();  // a later entry of the same name replaces the earlier
    }
    EstargzChunk c;
    c.offset = e.offset;
    c.end = *starts.upper_bound(e.offset);
    c.inner_offset = e.inner_offset;
    c.file_offset = e.chunk_offset;
    c.length = e.chunk_size != 0 ? e.chunk_size : file_size - e.chunk_offset;
    c.digest = *Digest::Parse(e.chunk_digest);  // ParseEstargzToc checked it
    file->push_back(std::move(c));
  }
  return out;
}

Result<std::string> ReadEstargzChunk(std::string_view member, const EstargzChunk& chunk) {
  const std::string what = "eStargz chunk at " + std::to_string(chunk.offset);
  auto data = Gunzip(member, chunk.inner_offset, chunk.length, true);
  if (!data.ok()) return data.status().WithContext(what);
  Digest got = Sha256Of(*data);
  if (got != chunk.digest) return Status::Error(EIO, what + ": digest " + got.str() + " is not the TOC's " + chunk.digest.str());
  return data;
}

}  // namespace layerfs
