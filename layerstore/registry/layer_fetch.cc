#include "layerstore/registry/layer_fetch.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "layerstore/base/remove_tree.h"
#include "layerstore/base/unique_fd.h"
#include "layerstore/layer/layer_index.h"
#include "layerstore/layer/layer_unpack.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr int kPipeSize = 1 << 20;

// UnpackLayer running on its own thread, reading a FIFO under tmp/ that we feed. Our end is
// opened O_RDWR|O_NONBLOCK: it never blocks in open() and never gets SIGPIPE; a reader that
// gave up (unpack error) is noticed through `done_`.
class StreamingUnpack {
 public:
  StreamingUnpack(const Store& store, const fs::path& work) : fifo_(store.NewTempPath("pull-fifo")), work_(work) {}
  ~StreamingUnpack() {
    (void)Finish();
    ::unlink(fifo_.c_str());
  }

  Status Start() {
    if (::mkfifo(fifo_.c_str(), 0600) != 0) return Status::FromErrno("mkfifo " + fifo_.string());
    fd_.Reset(::open(fifo_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd_.valid()) return Status::FromErrno("open " + fifo_.string());
    (void)::fcntl(fd_.get(), F_SETPIPE_SZ, kPipeSize);
    thread_ = std::thread([this] {
      result_ = UnpackLayer(fifo_, work_ / "tree", &index_);
      done_ = true;
    });
    return Status::Ok();
  }

  // Feeds bytes; fails once the unpacker stopped early (its error comes from Finish()).
  Status Feed(const char* data, size_t len) {
    while (len > 0) {
      if (done_) return Status::Error(EPIPE, "unpack stopped early");
      ssize_t n = ::write(fd_.get(), data, len);
      if (n > 0) {
        data += n;
        len -= static_cast<size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        pollfd p{fd_.get(), POLLOUT, 0};
        (void)::poll(&p, 1, 50);
      } else if (n < 0 && errno != EINTR) {
        return Status::FromErrno("write " + fifo_.string());
      }
    }
    return Status::Ok();
  }

  // The reader sees end of stream. Bytes still in the pipe vanish with its last open end, so
  // first let the reader drain them (which also proves it has opened the FIFO).
  void CloseInput() {
    if (!fd_.valid()) return;
    int pending = 0;
    while (!done_ && ::ioctl(fd_.get(), FIONREAD, &pending) == 0 && pending > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fd_.Reset();
  }

  // Ends the stream and waits: the diff_id and the index of what was unpacked.
  Result<Digest> Finish() {
    CloseInput();
    if (!thread_.joinable()) return result_;
    // A reader that had not reached open() when we closed (no bytes were sent) waits there for
    // a writer: one that comes and goes gives it end of stream. Harmless once it is reading.
    while (!done_) {
      int fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    thread_.join();
    return result_;
  }
  const LayerIndex& index() const { return index_; }

 private:
  fs::path fifo_;
  fs::path work_;
  UniqueFd fd_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  Result<Digest> result_{Status::Error(ECANCELED, "unpack did not run")};
  LayerIndex index_;
};

Status Publish(const fs::path& tmp, const fs::path& dest) {
  if (::rename(tmp.c_str(), dest.c_str()) == 0) return Status::Ok();
  int err = errno;
  if (err == ENOTEMPTY || err == EEXIST) return Status::Ok();  // another pull published it: verified too
  return Status::FromErrno(err, "publish " + dest.string());
}

std::string LayerName(const Descriptor& blob) { return "layer " + blob.digest.str(); }

// Download sink shared by both paths: blob writer, optional unpack stream, progress, cancel.
// hash (optional): a second digest of the bytes, so that a corrupt blob is reported as such
// before its (necessarily wrong) unpacked content is, and before BlobWriter publishes it.
BlobSink MakeSink(BlobWriter* writer, StreamingUnpack* unpack, Sha256* hash, const Descriptor& blob,
                  const std::atomic<bool>& cancel, const TransferCallback& progress) {
  std::string id = blob.digest.short_id();
  return [=, &cancel](const char* data, size_t len) -> Status {
    if (cancel) return Status::Error(ECANCELED, "cancelled");
    RETURN_IF_ERROR(writer->Write(data, len));
    if (hash != nullptr) hash->Update(data, len);
    if (unpack != nullptr) RETURN_IF_ERROR(unpack->Feed(data, len));
    if (progress) progress({id, "Downloading", writer->bytes_written(), blob.size, true});
    return Status::Ok();
  };
}

void Say(const TransferCallback& progress, const Descriptor& blob, const char* status) {
  if (progress) progress({blob.digest.short_id(), status, 0, 0, false});
}

Status DownloadAndUnpack(const Store& store, RegistryClient& client, const std::string& repo, const Descriptor& blob,
                         const Digest& diff_id, const fs::path& work, const std::atomic<bool>& cancel,
                         const TransferCallback& progress) {
  BlobStore blobs(store);
  ASSIGN_OR_RETURN(BlobWriter writer, blobs.NewWriter(blob.digest));
  if (::mkdir(work.c_str(), 0755) != 0 || ::mkdir((work / "tree").c_str(), 0755) != 0)
    return Status::FromErrno("create " + work.string());
  StreamingUnpack unpack(store, work);
  RETURN_IF_ERROR(unpack.Start());
  Sha256 hash;
  Status got = client.GetBlob(repo, blob.digest, blob.size, MakeSink(&writer, &unpack, &hash, blob, cancel, progress));
  auto unpacked = unpack.Finish();
  if (!got.ok() && got.code() != EPIPE) return got.WithContext(LayerName(blob));
  Say(progress, blob, "Verifying Checksum");
  if (got.ok()) {
    Digest actual = hash.Finish();
    if (actual != blob.digest)
      return Status::Error(EINVAL, LayerName(blob) + ": digest mismatch (downloaded bytes hash to " + actual.str() + ")");
  }
  if (!unpacked.ok()) return unpacked.status().WithContext(LayerName(blob));
  if (*unpacked != diff_id)
    return Status::Error(EINVAL, LayerName(blob) + ": diff_id mismatch (unpacks to " + unpacked->str() +
                                     ", config says " + diff_id.str() + ")");
  ASSIGN_OR_RETURN(Digest committed, writer.Commit());
  (void)committed;
  Say(progress, blob, "Download complete");
  Say(progress, blob, "Extracting");
  RETURN_IF_ERROR(unpack.index().Write(work / "index").WithContext(LayerName(blob)));
  return Publish(work, store.layer_dir(diff_id));
}

Status DownloadOnly(const Store& store, RegistryClient& client, const std::string& repo, const Descriptor& blob,
                    const std::atomic<bool>& cancel, const TransferCallback& progress) {
  BlobStore blobs(store);
  ASSIGN_OR_RETURN(BlobWriter writer, blobs.NewWriter(blob.digest));
  Status got = client.GetBlob(repo, blob.digest, blob.size, MakeSink(&writer, nullptr, nullptr, blob, cancel, progress));
  if (!got.ok()) return got.WithContext(LayerName(blob));
  Say(progress, blob, "Verifying Checksum");
  ASSIGN_OR_RETURN(Digest committed, writer.Commit());
  (void)committed;
  Say(progress, blob, "Download complete");
  return Status::Ok();
}

}  // namespace

Status FetchLayer(const Store& store, RegistryClient& client, const std::string& repo, const Descriptor& blob,
                  const Digest& diff_id, const std::atomic<bool>& cancel, const TransferCallback& progress) {
  BlobStore blobs(store);
  LayerStore layers(store);
  bool have_blob = blobs.Has(blob.digest);
  bool have_layer = layers.Has(diff_id);
  if (have_blob && have_layer) {
    Say(progress, blob, "Already exists");
    return Status::Ok();
  }
  if (have_layer) {
    RETURN_IF_ERROR(DownloadOnly(store, client, repo, blob, cancel, progress));
  } else if (have_blob) {
    Say(progress, blob, "Extracting");
    RETURN_IF_ERROR(layers.Ensure({{blob.digest, diff_id}}).WithContext(LayerName(blob)));
  } else {
    fs::path work = store.NewTempPath("pull-layer");
    Status st = DownloadAndUnpack(store, client, repo, blob, diff_id, work, cancel, progress);
    (void)RemoveTree(work);  // gone already when published
    RETURN_IF_ERROR(st);
  }
  Say(progress, blob, "Pull complete");
  return Status::Ok();
}

}  // namespace layerfs
