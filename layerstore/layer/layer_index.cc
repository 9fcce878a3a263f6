// Layer index file format, version 1 (all integers little-endian).
//
//   offset  size  field
//   0       8     magic "LFSINDEX"
//   8       4     u32 format version (1)
//   12      8     u64 entry count N
//   20      ...   N entries, back to back (below)
//   end-8   8     u64 FNV-1a-64 of every byte before it (catches corruption, not tampering)
//
// An entry ("varint" = unsigned LEB128, at most 10 bytes; "bytes" = varint length + raw bytes):
//   varint  shared   length of the prefix this path shares with the previous entry's path
//   bytes   suffix   the rest of the path (path = previous_path[0, shared) + suffix)
//   u8      type     EntryType (0..7)
//   u8      flags    bit 0: opaque; other bits must be 0
//   varint  mode     07777 bits only
//   varint  uid, gid (each < 2^32)
//   varint  size
//   varint  mtime_sec, zigzag-encoded (signed)
//   varint  mtime_nsec (< 10^9)
//   varint  rdev
//   varint  hardlink_group (< 2^32)
//   bytes   link_target
//   varint  xattr count X, then X times: bytes name, bytes value (values are binary)
//
// Read() loads the file with one read() and parses it with bounds checks on every field: a
// truncated or corrupt file is an error naming the file, never an over-read. Sorted paths make
// the prefix sharing effective (typically a 3-4x smaller file than plain strings).
#include "layerstore/layer/layer_index.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "layerstore/base/unique_fd.h"

namespace layerfs {

namespace {

constexpr char kMagic[8] = {'L', 'F', 'S', 'I', 'N', 'D', 'E', 'X'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 20;
constexpr size_t kTrailerSize = 8;
constexpr size_t kMinEntrySize = 14;  // every field at its smallest encoding
constexpr uint32_t kMaxType = static_cast<uint32_t>(EntryType::kWhiteout);

uint64_t Fnv1a64(const char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

class Encoder {
 public:
  void Fixed(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
  }
  void Raw(const char* p, size_t n) { out_.append(p, n); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

// Reads fields from [p, end); any read past end sets failed() and yields zeros.
class Decoder {
 public:
  Decoder(const char* p, const char* end) : p_(p), end_(end) {}
  bool failed() const { return failed_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  uint64_t Fixed(int bytes) {
    if (remaining() < static_cast<size_t>(bytes)) return Fail();
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p_[i])) << (8 * i);
    p_ += bytes;
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return Fail();
      auto b = static_cast<unsigned char>(*p_++);
      if (shift == 63 && b > 1) return Fail();  // more than 64 bits
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return Fail();
  }
  uint64_t Bounded(uint64_t max) {
    uint64_t v = Varint();
    return v > max ? Fail() : v;
  }
  std::string_view Bytes() {
    uint64_t n = Varint();
    if (failed_ || n > remaining()) {
      Fail();
      return {};
    }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }

 private:
  uint64_t Fail() {
    failed_ = true;
    p_ = end_;
    return 0;
  }
  const char* p_;
  const char* end_;
  bool failed_ = false;
};

size_t SharedPrefix(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

void EncodeEntry(const LayerEntry& e, std::string_view prev_path, Encoder* enc) {
  size_t shared = SharedPrefix(prev_path, e.path);
  enc->Varint(shared);
  enc->Bytes(std::string_view(e.path).substr(shared));
  enc->Fixed(static_cast<uint8_t>(e.type), 1);
  enc->Fixed(e.opaque ? 1 : 0, 1);
  enc->Varint(e.mode);
  enc->Varint(e.uid);
  enc->Varint(e.gid);
  enc->Varint(e.size);
  enc->Varint(ZigZag(e.mtime_sec));
  enc->Varint(e.mtime_nsec);
  enc->Varint(e.rdev);
  enc->Varint(e.hardlink_group);
  enc->Bytes(e.link_target);
  enc->Varint(e.xattrs.size());
  for (const auto& [name, value] : e.xattrs) {
    enc->Bytes(name);
    enc->Bytes(value);
  }
}

// Decodes one entry; prev_path is the previous entry's path (prefix source).
bool DecodeEntry(Decoder* d, const std::string& prev_path, LayerEntry* e) {
  uint64_t shared = d->Bounded(prev_path.size());
  std::string_view suffix = d->Bytes();
  e->path.assign(prev_path, 0, shared);
  e->path.append(suffix);
  uint64_t type = d->Fixed(1);
  uint64_t flags = d->Fixed(1);
  if (type > kMaxType || flags > 1) return false;
  e->type = static_cast<EntryType>(type);
  e->opaque = flags & 1;
  e->mode = static_cast<uint32_t>(d->Bounded(07777));
  e->uid = static_cast<uint32_t>(d->Bounded(UINT32_MAX));
  e->gid = static_cast<uint32_t>(d->Bounded(UINT32_MAX));
  e->size = d->Varint();
  e->mtime_sec = UnZigZag(d->Varint());
  e->mtime_nsec = static_cast<uint32_t>(d->Bounded(999999999));
  e->rdev = d->Varint();
  e->hardlink_group = static_cast<uint32_t>(d->Bounded(UINT32_MAX));
  e->link_target = d->Bytes();
  uint64_t nx = d->Varint();
  if (d->failed() || nx > d->remaining() / 2) return false;
  e->xattrs.resize(nx);
  for (auto& [name, value] : e->xattrs) {
    name = d->Bytes();
    value = d->Bytes();
  }
  return !d->failed();
}

Result<std::string> ReadWholeFile(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return Status::FromErrno("layer index " + file.string());
  std::string buf(static_cast<size_t>(st.st_size), '\0');
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = ::read(fd.get(), buf.data() + off, buf.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("layer index " + file.string());
    if (n == 0) break;
    off += static_cast<size_t>(n);
  }
  buf.resize(off);
  return buf;
}

Status Corrupt(const std::filesystem::path& file, const std::string& why) {
  return Status::Error(EINVAL, "layer index " + file.string() + ": " + why);
}

}  // namespace

void LayerIndex::Sort() {
  std::sort(entries_.begin(), entries_.end(),
            [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
}

Status LayerIndex::Write(const std::filesystem::path& file) const {
  Encoder enc;
  enc.Raw(kMagic, sizeof kMagic);
  enc.Fixed(kVersion, 4);
  enc.Fixed(entries_.size(), 8);
  std::string_view prev;
  for (const LayerEntry& e : entries_) {
    EncodeEntry(e, prev, &enc);
    prev = e.path;
  }
  enc.Fixed(Fnv1a64(enc.out().data(), enc.out().size()), 8);
  const std::string& bytes = enc.out();

  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno("write layer index " + file.string());
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write layer index " + file.string());
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.Release()) != 0)
    return Status::FromErrno("write layer index " + file.string());
  return Status::Ok();
}

Result<LayerIndex> LayerIndex::Read(const std::filesystem::path& file) {
  ASSIGN_OR_RETURN(std::string buf, ReadWholeFile(file));
  if (buf.size() < kHeaderSize + kTrailerSize || std::memcmp(buf.data(), kMagic, sizeof kMagic) != 0)
    return Corrupt(file, "not a layer index (bad magic or too short)");
  Decoder trailer(buf.data() + buf.size() - kTrailerSize, buf.data() + buf.size());
  if (trailer.Fixed(8) != Fnv1a64(buf.data(), buf.size() - kTrailerSize))
    return Corrupt(file, "checksum mismatch (truncated or corrupt)");
  Decoder d(buf.data() + sizeof kMagic, buf.data() + buf.size() - kTrailerSize);
  uint64_t version = d.Fixed(4);
  if (version != kVersion) return Corrupt(file, "unsupported version " + std::to_string(version));
  uint64_t count = d.Fixed(8);
  if (count > d.remaining() / kMinEntrySize) return Corrupt(file, "entry count larger than the file");
  LayerIndex index;
  index.entries_.resize(count);
  const std::string empty;
  for (uint64_t i = 0; i < count; ++i) {
    const std::string& prev = i == 0 ? empty : index.entries_[i - 1].path;
    if (!DecodeEntry(&d, prev, &index.entries_[i])) return Corrupt(file, "bad entry " + std::to_string(i));
  }
  if (d.remaining() != 0) return Corrupt(file, "trailing bytes after the last entry");
  return index;
}

uint64_t LayerContentSize(const LayerIndex& index) {
  uint64_t total = 0;
  std::set<uint32_t> groups;
  for (const auto& e : index.entries()) {
    if (e.type == EntryType::kSymlink) total += e.size;
    if (e.type != EntryType::kRegular) continue;
    if (e.hardlink_group != 0 && !groups.insert(e.hardlink_group).second) continue;
    total += e.size;
  }
  return total;
}

}  // namespace layerfs
