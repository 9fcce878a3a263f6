#include "layerstore/lazy/chunk_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

namespace layerfs {

namespace {

std::string Slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Records(const std::vector<uint32_t>& chunks) {
  std::string bytes;
  for (uint32_t id : chunks)
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(id >> (8 * i)));
  return bytes;
}

// Changes at every boot (random, from the kernel): a page cache that may have been lost.
std::string BootId() { return Slurp("/proc/sys/kernel/random/boot_id"); }

}  // namespace

std::filesystem::path ChunkJournal::boot_file() const { return file_.string() + ".boot"; }

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
  ChunkJournal journal(std::move(fd), file);
  journal.stale_ = Slurp(journal.boot_file()) != BootId();
  return journal;
}

Status ChunkJournal::Append(const std::vector<uint32_t>& chunks) {
  std::string bytes = Records(chunks);
  // One write with O_APPEND: records of concurrent fetches never interleave.
  ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
  if (n != static_cast<ssize_t>(bytes.size()))
    return Status::FromErrno(n < 0 ? errno : EIO, "chunk journal " + file_.string());
  return Status::Ok();
}

// The records first (tmp, fsync, rename), then the boot: a crash between the two leaves the
// journal stale, to be checked again.
Status ChunkJournal::Rewrite(const std::vector<uint32_t>& chunks) {
  auto write = [](const std::filesystem::path& dest, const std::string& bytes) -> Status {
    std::filesystem::path tmp = dest.string() + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid() || ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
        ::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), dest.c_str()) != 0)
      return Status::FromErrno("chunk journal " + dest.string());
    return Status::Ok();
  };
  RETURN_IF_ERROR(write(file_, Records(chunks)));
  UniqueFd fd(::open(file_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("chunk journal " + file_.string());
  fd_ = std::move(fd);
  RETURN_IF_ERROR(write(boot_file(), BootId()));
  stale_ = false;
  return Status::Ok();
}

}  // namespace layerfs
