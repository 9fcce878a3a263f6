#include "layerstore/lazy/chunk_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace layerfs {

Result<ChunkJournal> ChunkJournal::Open(const std::filesystem::path& file, size_t count, std::vector<bool>* verified) {
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno("chunk journal " + file.string());
  verified->assign(count, false);
  unsigned char rec[4];
  off_t off = 0;
  for (;; off += sizeof rec) {
    ssize_t n = ::pread(fd.get(), rec, sizeof rec, off);
    if (n < 0) return Status::FromErrno("chunk journal " + file.string());
    if (n < static_cast<ssize_t>(sizeof rec)) break;
    uint32_t id = rec[0] | rec[1] << 8 | rec[2] << 16 | static_cast<uint32_t>(rec[3]) << 24;
    if (id < count) (*verified)[id] = true;
  }
  // Drops a torn record, so that the records appended after it stay aligned.
  if (::ftruncate(fd.get(), off) != 0) return Status::FromErrno("chunk journal " + file.string());
  return ChunkJournal(std::move(fd), file);
}

Status ChunkJournal::Append(const std::vector<uint32_t>& chunks) {
  std::string bytes;
  for (uint32_t id : chunks)
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(id >> (8 * i)));
  // One write with O_APPEND: records of concurrent fetches never interleave.
  ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
  if (n != static_cast<ssize_t>(bytes.size())) return Status::FromErrno(n < 0 ? errno : EIO, "chunk journal " + file_.string());
  return Status::Ok();
}

}  // namespace layerfs
