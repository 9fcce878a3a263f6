#include "layerstore/store/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "layerstore/base/unique_fd.h"

namespace layerfs {

namespace {

Status WriteAll(int fd, const char* data, size_t len, const std::string& what) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(what);
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string BlobName(const Digest& expected) { return expected.empty() ? "blob" : "blob " + expected.str(); }

}  // namespace

struct BlobWriter::Impl {
  const Store* store;
  Digest expected;
  fs::path tmp;
  UniqueFd fd;
  Sha256 hash;
  uint64_t written = 0;
  bool done = false;

  ~Impl() {
    if (!done) ::unlink(tmp.c_str());
  }
};

BlobWriter::BlobWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BlobWriter::BlobWriter(BlobWriter&&) noexcept = default;
BlobWriter::~BlobWriter() = default;

uint64_t BlobWriter::bytes_written() const { return impl_->written; }

Status BlobWriter::Write(const void* data, size_t len) {
  if (impl_->done) return Status::Error(EINVAL, BlobName(impl_->expected) + ": write after commit");
  RETURN_IF_ERROR(WriteAll(impl_->fd.get(), static_cast<const char*>(data), len, BlobName(impl_->expected)));
  impl_->hash.Update(data, len);
  impl_->written += len;
  return Status::Ok();
}

Result<Digest> BlobWriter::Commit() {
  Impl& w = *impl_;
  if (w.done) return Status::Error(EINVAL, BlobName(w.expected) + ": committed twice");
  w.done = true;  // from here on the temp file is ours to remove on every path
  Digest got = w.hash.Finish();
  auto fail = [&](Status st) {
    ::unlink(w.tmp.c_str());
    return st;
  };
  if (!w.expected.empty() && got != w.expected)
    return fail(Status::Error(EINVAL, "blob " + w.expected.str() + ": digest mismatch (got " + got.str() + ")"));
  if (::fsync(w.fd.get()) != 0) return fail(Status::FromErrno(BlobName(got)));
  if (::close(w.fd.Release()) != 0) return fail(Status::FromErrno(BlobName(got)));
  // rename() replaces an existing blob of the same digest atomically: same bytes, so racing
  // writers of one blob all succeed.
  fs::path dest = w.store->blob_path(got);
  if (::rename(w.tmp.c_str(), dest.c_str()) != 0) return fail(Status::FromErrno("blob " + got.str()));
  return got;
}

bool BlobStore::Has(const Digest& d) const {
  struct stat st;
  return !d.empty() && ::stat(Path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<uint64_t> BlobStore::Size(const Digest& d) const {
  struct stat st;
  if (::stat(Path(d).c_str(), &st) != 0) return Status::FromErrno("blob " + d.str());
  return static_cast<uint64_t>(st.st_size);
}

Result<BlobWriter> BlobStore::NewWriter(const Digest& expected) const {
  auto impl = std::make_unique<BlobWriter::Impl>();
  impl->store = store_;
  impl->expected = expected;
  impl->tmp = store_->NewTempPath("blob");
  impl->fd.Reset(::open(impl->tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!impl->fd.valid()) {
    impl->done = true;
    return Status::FromErrno(BlobName(expected) + ": create " + impl->tmp.string());
  }
  return BlobWriter(std::move(impl));
}

Result<Digest> BlobStore::PutBytes(std::string_view bytes, const Digest& expected) const {
  if (Has(expected)) return expected;
  ASSIGN_OR_RETURN(BlobWriter w, NewWriter(expected));
  RETURN_IF_ERROR(w.Write(bytes.data(), bytes.size()));
  return w.Commit();
}

Result<Digest> BlobStore::PutFile(const fs::path& file, const Digest& expected) const {
  if (Has(expected)) return expected;
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Status::FromErrno(file.string());
  ASSIGN_OR_RETURN(BlobWriter w, NewWriter(expected));
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(file.string());
    if (n == 0) break;
    RETURN_IF_ERROR(w.Write(buf.data(), static_cast<size_t>(n)));
  }
  return w.Commit();
}

Result<std::string> BlobStore::ReadAll(const Digest& d) const {
  UniqueFd fd(::open(Path(d).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("blob " + d.str());
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("blob " + d.str());
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Status BlobStore::Remove(const Digest& d) const {
  if (::unlink(Path(d).c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove blob " + d.str());
  return Status::Ok();
}

std::vector<Digest> BlobStore::List() const {
  std::vector<Digest> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store_->blobs_dir(), ec)) {
    auto d = Digest::Parse("sha256:" + e.path().filename().string());
    if (d.ok()) out.push_back(*d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace layerfs
