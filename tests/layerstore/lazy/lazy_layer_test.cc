// LazyLayer against a real docker-registry on 127.0.0.1 serving an eStargz blob made by
// EstargzWriter (through ConvertLayerToEstargz): the index built from the TOC equals the one
// LayerStore::Ensure unpacks from the same blob; EnsureRange brings exactly the chunks asked for
// (Range requests counted in the registry's access log), once however many threads ask; a
// tampered chunk is refused; a registry gone, or a reply cut on every attempt (the test's own
// server), gives EIO and keeps what was verified, as does a killed process, and a reboot keeps
// what survived it; a second Open while one owns the layer is EBUSY, system df counts the
// partial layer and prune -a removes it once unowned; Complete, with readers
// beside it and without root too, makes an ordinary layer equal to the eager one.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "layerstore/estargz/estargz_convert.h"
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/lazy/lazy_layer.h"
#include "layerstore/store/blob_store.h"
#include "layerstore/store/disk_usage.h"
#include "layerstore/store/layer_store.h"
#include "layerstore/store/system_prune.h"
#include "tests/layerstore/test_util.h"
#include "tests/tools/loopback_http_server.h"
#include "tests/tools/registry_fixture.h"

namespace layerfs::testing {
namespace {

constexpr const char* kRepo = "test/lazy";
constexpr uint64_t kChunk = 64 << 10;

std::string PreadAll(const fs::path& file, uint64_t offset, size_t length) {
  std::string out(length, '\0');
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : ::pread(fd, out.data(), length, static_cast<off_t>(offset));
  if (fd >= 0) ::close(fd);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

class LazyLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LocalRegistry::Available()) GTEST_SKIP() << "docker-registry is not installed";
    std::string error;
    registry_ = LocalRegistry::Start({.access_log = true}, &error);
    ASSERT_TRUE(registry_) << error;
    auto eager = Store::Open(dir_.path() / "eager");
    auto lazy = Store::Open(dir_.path() / "lazy");
    ASSERT_TRUE(eager.ok() && lazy.ok());
    eager_ = std::make_unique<Store>(std::move(*eager));
    lazy_ = std::make_unique<Store>(std::move(*lazy));
    MakeBlob();
    RegistryOptions ro;
    ro.registry = registry_->host();
    ro.max_attempts = 3;
    ro.backoff = std::chrono::milliseconds(20);
    client_ = std::make_unique<RegistryClient>(ro);
    Status up = client_->UploadBlob(kRepo, blob_.digest, BlobStore(*eager_).Path(blob_.digest));
    ASSERT_TRUE(up.ok()) << up.message();
  }

  // A layer with every kind of entry, converted to eStargz with 64 KiB chunks and a prefetch
  // list (so the blob has the landmark).
  void MakeBlob() {
    TarBuilder b;
    b.Dir("./", 0555).Dir("etc/").File("etc/os-release", "ID=test\n").File("etc/empty", "");
    b.Add({.path = "etc/attr", .data = "x", .uid = 1000, .gid = 100, .mtime_nsec = 123456789, .xattrs = {{"user.note", std::string("a\0b", 3)}}});
    b.Dir("usr/").Dir("usr/bin/").File("usr/bin/tool", big_, 0755).Hardlink("usr/bin/tool2", "usr/bin/tool");
    b.Symlink("usr/bin/sh", "tool").File("usr/.wh.gone", "").Dir("opt/").File("opt/.wh..wh..opq", "");
    b.Add({.path = "dev/null", .type = AE_IFCHR, .perm = 0666, .dev_major = 1, .dev_minor = 3});
    b.Add({.path = "dev/fifo", .type = AE_IFIFO, .perm = 0600});
    b.File("usr/bin/other", RandomBytes(100000, 9), 0555).File("etc/shadow", "root:*:19000::::::\n", 0);
    std::string source = b.Build(Compression::kGzip);
    auto d = BlobStore(*eager_).PutBytes(source);
    ASSERT_TRUE(d.ok());
    EstargzOptions o;
    o.prefetch = {"etc/os-release"};
    o.chunk_size = kChunk;
    auto out = ConvertLayerToEstargz(*eager_, Descriptor{kOciLayerGzipType, *d, source.size(), {}, {}}, o);
    ASSERT_TRUE(out.ok()) << out.status().message();
    blob_ = out->blob;
    diff_id_ = out->diff_id;
  }

  std::unique_ptr<LazyLayer> OpenLazy(LazyLayerOptions options = {}) {
    auto l = LazyLayer::Open(*lazy_, *client_, kRepo, blob_, diff_id_, std::move(options));
    EXPECT_TRUE(l.ok()) << l.status().message();
    return l.ok() ? std::move(*l) : nullptr;
  }

  LayerIndex EagerIndex() {
    Status st = LayerStore(*eager_).Ensure({{blob_.digest, diff_id_}});
    EXPECT_TRUE(st.ok()) << st.message();
    auto index = LayerStore(*eager_).ReadIndex(diff_id_);
    EXPECT_TRUE(index.ok());
    return index.ok() ? *index : LayerIndex();
  }

  // Blob GETs in the registry's access log, waiting up to 2 s for `want` of them: the registry
  // writes its line once it has answered, a moment after the client has the bytes. More than
  // `want` shows as such; the layer's own count (stats().requests) is exact.
  int BlobGets(int want) {
    size_t n = 0;
    for (int tries = 0; tries < 100; ++tries) {
      n = registry_->BlobGets(kRepo, blob_.digest.str());
      if (n >= static_cast<size_t>(want)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return static_cast<int>(n);
  }

  // Chunk i of a file, by the blob's own footer and TOC.
  EstargzChunk ChunkOf(const std::string& name, size_t i) {
    std::string blob = ReadFile(BlobStore(*eager_).Path(blob_.digest));
    auto toc_offset = ParseEstargzFooter(std::string_view(blob).substr(blob.size() - kEstargzFooterSize));
    EXPECT_TRUE(toc_offset.ok());
    std::string_view member = std::string_view(blob).substr(*toc_offset, blob.size() - kEstargzFooterSize - *toc_offset);
    auto toc = ReadEstargzToc(member, *toc_offset, Digest());
    EXPECT_TRUE(toc.ok());
    auto chunks = EstargzChunks(*toc, *toc_offset);
    EXPECT_GT(chunks[name].size(), i);
    return chunks[name].size() > i ? chunks[name][i] : EstargzChunk();
  }

  fs::path RegistryBlobFile() {
    return registry_->dir() / "storage/docker/registry/v2/blobs/sha256" / blob_.digest.hex().substr(0, 2) /
           blob_.digest.hex() / "data";
  }

  TempDir dir_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<Store> eager_, lazy_;
  std::unique_ptr<RegistryClient> client_;
  std::string big_ = RandomBytes(300000, 7);  // five chunks of 64 KiB
  Descriptor blob_;
  Digest diff_id_;
};

void ExpectSameIndex(const LayerIndex& lazy, const LayerIndex& eager) {
  ASSERT_EQ(lazy.entries().size(), eager.entries().size());
  for (size_t i = 0; i < lazy.entries().size(); ++i)
    EXPECT_EQ(lazy.entries()[i], eager.entries()[i]) << "entry " << i << ": " << lazy.entries()[i].path << " vs "
                                                     << eager.entries()[i].path;
}

TEST_F(LazyLayerTest, IndexFromTheTocEqualsTheEagerUnpacksEntryByEntry) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  EXPECT_EQ(BlobGets(2), 2) << "the footer and the TOC only";
  EXPECT_EQ(lazy->stats().requests, 2u);
  LayerIndex eager = EagerIndex();
  ExpectSameIndex(lazy->index(), eager);
  std::set<EntryType> kinds;
  bool opaque = false, linked = false;
  for (const LayerEntry& e : eager.entries()) {
    kinds.insert(e.type);
    opaque |= e.opaque;
    linked |= e.hardlink_group != 0;
  }
  EXPECT_TRUE(opaque && linked && kinds.count(EntryType::kWhiteout) && kinds.count(EntryType::kSymlink) &&
              kinds.count(EntryType::kCharDevice))
      << "the layer has every kind of entry the test means to compare";
  struct stat st;
  ASSERT_EQ(::stat((lazy->tree_dir() / "usr/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), big_.size());
  EXPECT_EQ(st.st_blocks, 0) << "no data before a read asks for it";
  EXPECT_EQ(lazy->stats().chunks, 11u) << "tool 5, other 2, os-release, attr, shadow, the landmark";
}

// One owner: a second Open while the first lives is EBUSY naming the owner, without a request.
TEST_F(LazyLayerTest, ASecondOpenWhileOneOwnsTheLayerIsBusy) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  auto second = LazyLayer::Open(*lazy_, *client_, kRepo, blob_, diff_id_);
  ASSERT_EQ(second.status().code(), EBUSY);
  EXPECT_EQ(second.status().message(), "layer " + diff_id_.str() + " is being pulled lazily by another process (pid " +
                                           std::to_string(::getpid()) + ")");
  EXPECT_EQ(BlobGets(2), 2) << "the first Open's footer and TOC only";
  lazy.reset();
  EXPECT_TRUE(OpenLazy()) << "free once its owner is gone";
}

// system df counts lazy/<hex> as a partial layer (allocated blocks: what arrived) and prune -a
// removes it only once nobody owns it; plain prune never does.
TEST_F(LazyLayerTest, DfCountsAPartialLayerAndPruneAllRemovesItOnlyWhenUnowned) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  fs::path dir = lazy_->lazy_layer_dir(diff_id_);
  auto before = ComputeDiskUsage(*lazy_);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, big_.size()).ok());
  auto df = ComputeDiskUsage(*lazy_);
  ASSERT_TRUE(df.ok()) << df.status().message();
  ASSERT_EQ(df->partial_layers.size(), 1u);
  EXPECT_EQ(df->partial_layers[0].diff_id, diff_id_);
  EXPECT_TRUE(df->partial_layers[0].owned);
  EXPECT_EQ(df->partial_active, 1u);
  EXPECT_EQ(df->partial_reclaimable, 0u);
  std::set<std::pair<dev_t, ino_t>> seen;
  EXPECT_EQ(df->partial_size, AllocatedBytes(dir, &seen));
  EXPECT_GE(df->partial_size, before->partial_size + big_.size()) << "the tool's data arrived";
  EXPECT_LT(df->partial_size, 2 * blob_.size + big_.size() + (1 << 20)) << "sparse: not the apparent sizes";
  EXPECT_EQ(df->images_size + df->containers_size + df->build_cache_size + df->partial_size, df->store_total);

  auto kept = SystemPrune(*lazy_, true, std::chrono::seconds(0));
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_TRUE(kept->sweep.partial_layers.empty());
  EXPECT_TRUE(fs::exists(dir)) << "owned: kept";
  lazy.reset();
  df = ComputeDiskUsage(*lazy_);
  ASSERT_TRUE(df.ok());
  ASSERT_EQ(df->partial_layers.size(), 1u);
  EXPECT_FALSE(df->partial_layers[0].owned);
  EXPECT_EQ(df->partial_reclaimable, df->partial_size);
  ASSERT_TRUE(SystemPrune(*lazy_, false, std::chrono::seconds(0)).ok());
  EXPECT_TRUE(fs::exists(dir)) << "only prune -a removes a partial layer";
  auto pruned = SystemPrune(*lazy_, true, std::chrono::seconds(0));
  ASSERT_TRUE(pruned.ok()) << pruned.status().message();
  EXPECT_EQ(pruned->sweep.partial_layers, std::vector<Digest>{diff_id_});
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_GE(pruned->reclaimed, big_.size());
  EXPECT_TRUE(OpenLazy()) << "pulled lazily again from scratch";
}

TEST_F(LazyLayerTest, EnsureRangeFetchesOnlyTheMissingChunksCoalesced) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  Status st = lazy->EnsureRange("usr/bin/tool", kChunk + 10, 100);  // inside chunk 1
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(BlobGets(3), 3) << "the footer, the TOC, one chunk";
  EXPECT_EQ(lazy->stats().verified_chunks, 1u);
  fs::path tool = lazy->tree_dir() / "usr/bin/tool";
  EXPECT_EQ(PreadAll(tool, kChunk + 10, 100), big_.substr(kChunk + 10, 100));
  EXPECT_EQ(PreadAll(tool, 0, 16), std::string(16, '\0')) << "chunk 0 is still a hole";
  // The whole file: chunk 0 alone, then chunks 2-4 together (their members touch).
  st = lazy->EnsureRange("usr/bin/tool2", 0, big_.size());  // a hard link reaches the same data
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(BlobGets(5), 5);
  EXPECT_EQ(PreadAll(tool, 0, big_.size()), big_);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, UINT64_MAX).ok());
  ASSERT_TRUE(lazy->EnsureRange("etc/empty", 0, 10).ok());
  EXPECT_EQ(lazy->stats().requests, 5u) << "nothing fetched twice";
  EXPECT_EQ(BlobGets(5), 5);
  EXPECT_EQ(lazy->EnsureRange("usr/bin/sh", 0, 1).code(), ENOENT);
  EXPECT_EQ(lazy->EnsureRange("no/such", 0, 1).code(), ENOENT);
  struct stat st_tool;
  ASSERT_EQ(::stat(tool.c_str(), &st_tool), 0);
  EXPECT_EQ(st_tool.st_mtim.tv_sec, 1700000000) << "writing the data keeps the tree's mtime";
}

TEST_F(LazyLayerTest, ConcurrentReadersOfOneChunkFetchItOnce) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  std::vector<std::thread> readers;
  readers.reserve(8);
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i)
    readers.emplace_back([&, i] {
      if (!lazy->EnsureRange("usr/bin/other", static_cast<uint64_t>(i) * 1000, 5000).ok()) ++failures;
    });
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(lazy->stats().requests, 3u);
  EXPECT_EQ(BlobGets(3), 3);
}

TEST_F(LazyLayerTest, TamperedChunkIsRefusedLoggedAndNothingWritten) {
  EstargzChunk chunk0 = ChunkOf("usr/bin/tool", 0);
  std::string stored = ReadFile(RegistryBlobFile());
  ASSERT_EQ(stored.size(), blob_.size) << "the registry keeps the blob as a file";
  stored[(chunk0.offset + chunk0.end) / 2] ^= 0x55;
  WriteFile(RegistryBlobFile(), stored);
  std::vector<std::string> lines;
  LazyLayerOptions o;
  o.log = [&](const std::string& line) { lines.push_back(line); };
  auto lazy = OpenLazy(o);
  ASSERT_TRUE(lazy);
  Status st = lazy->EnsureRange("usr/bin/tool", 0, 10);
  EXPECT_EQ(st.code(), EIO) << st.message();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("usr/bin/tool"), std::string::npos) << lines[0];
  fs::path tool = lazy->tree_dir() / "usr/bin/tool";
  struct stat sb;
  ASSERT_EQ(::stat(tool.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_blocks, 0) << "not a byte of the refused chunk written";
  EXPECT_EQ(lazy->stats().verified_chunks, 0u);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", kChunk, 10).ok()) << "the untouched chunks still come";
  EXPECT_EQ(lazy->EnsureRange("usr/bin/tool", 0, 10).code(), EIO) << "refused again, not remembered as good";
  EXPECT_EQ(lazy->Complete().code(), EIO);
  EXPECT_FALSE(LayerStore(*lazy_).Has(diff_id_));
}

TEST_F(LazyLayerTest, RegistryGoneGivesEioAndWhatWasVerifiedStays) {
  LazyLayerOptions o;
  o.max_request = kChunk;  // Complete has a batch per chunk, one at a time
  o.jobs = 1;
  auto lazy = OpenLazy(o);
  ASSERT_TRUE(lazy);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, kChunk).ok());
  registry_->Stop();
  auto t0 = std::chrono::steady_clock::now();
  Status st = lazy->EnsureRange("usr/bin/tool", kChunk, 10);
  EXPECT_EQ(st.code(), EIO) << st.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "a bounded retry";
  EXPECT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, kChunk).ok()) << "what is local still serves";
  uint64_t requests = lazy->stats().requests;
  EXPECT_EQ(lazy->Complete().code(), EIO);
  EXPECT_EQ(lazy->stats().requests, requests + 1) << "Complete stops at its first failed batch";
  fs::path tool = lazy->tree_dir() / "usr/bin/tool";
  EXPECT_EQ(PreadAll(tool, 0, kChunk), big_.substr(0, kChunk));
  lazy.reset();
  auto again = OpenLazy();  // a new process's view: no network needed to open
  ASSERT_TRUE(again);
  EXPECT_EQ(again->stats().verified_chunks, 1u);
  EXPECT_TRUE(again->EnsureRange("usr/bin/tool", 0, kChunk).ok());
  EXPECT_EQ(again->stats().requests, 0u);
}

// A connection cut in the middle of a Range reply, from the test's own server (it stops every
// reply at the blob's half): the client resumes where the cut was; when every attempt is cut,
// the reader gets EIO after the bounded retries and nothing of the chunk is written.
TEST_F(LazyLayerTest, ConnectionCutMidReplyResumesOrGivesEio) {
  FakeRegistry reg;
  reg.repo = kRepo;
  reg.blobs[blob_.digest.str()] = ReadFile(BlobStore(*eager_).Path(blob_.digest));
  LoopbackHttpServer server([&](const auto& r) { return reg.Handle(r); });
  RegistryOptions ro;
  ro.registry = server.host();
  ro.max_attempts = 3;
  ro.backoff = std::chrono::milliseconds(5);
  RegistryClient client(ro);
  size_t index = 0;  // the chunk of usr/bin/tool whose member holds the blob's half
  while (index < 5 && ChunkOf("usr/bin/tool", index).end <= blob_.size / 2) ++index;
  ASSERT_LT(ChunkOf("usr/bin/tool", index).offset, blob_.size / 2);
  uint64_t at = index * kChunk;
  for (FakeRegistry::Fault fault : {FakeRegistry::Fault::kCutOnce, FakeRegistry::Fault::kCutAlways}) {
    auto store = Store::Open(dir_.path() / (fault == FakeRegistry::Fault::kCutOnce ? "once" : "always"));
    ASSERT_TRUE(store.ok());
    auto lazy = LazyLayer::Open(*store, client, kRepo, blob_, diff_id_);
    ASSERT_TRUE(lazy.ok()) << lazy.status().message();
    reg.SetFault(blob_.digest.str(), fault);
    Status st = (*lazy)->EnsureRange("usr/bin/tool", at, 10);
    fs::path tool = (*lazy)->tree_dir() / "usr/bin/tool";
    if (fault == FakeRegistry::Fault::kCutOnce) {
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(reg.cuts, 1);
      EXPECT_EQ(PreadAll(tool, at, kChunk), big_.substr(at, kChunk));
    } else {
      EXPECT_EQ(st.code(), EIO) << st.message();
      EXPECT_NE(st.message().find("after 3 attempts"), std::string::npos) << st.message();
      struct stat sb;
      ASSERT_EQ(::stat(tool.c_str(), &sb), 0);
      EXPECT_EQ(sb.st_blocks, 0) << "nothing of the cut chunk written";
    }
    reg.SetFault(FakeRegistry::Fault::kNone);
  }
}

TEST_F(LazyLayerTest, KilledProcessLosesNothingVerified) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto l = LazyLayer::Open(*lazy_, *client_, kRepo, blob_, diff_id_);
    bool ok = l.ok() && (*l)->EnsureRange("usr/bin/tool", 0, 2 * kChunk).ok();
    ::kill(::getpid(), ok ? SIGKILL : SIGTERM);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child's reads failed";
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  EXPECT_EQ(lazy->stats().verified_chunks, 2u);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, 2 * kChunk).ok());
  EXPECT_EQ(lazy->stats().requests, 0u) << "nothing fetched again";
  EXPECT_EQ(BlobGets(3), 3) << "the child's footer, TOC and one run of two chunks";
  EXPECT_EQ(PreadAll(lazy->tree_dir() / "usr/bin/tool", 0, 2 * kChunk), big_.substr(0, 2 * kChunk));
}

// Nothing is synced per chunk: after a reboot (another boot id) the journal's chunks are
// checked again, and one whose bytes a crash lost is fetched again.
TEST_F(LazyLayerTest, AfterARebootVerifiedChunksAreCheckedAgain) {
  auto lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, 2 * kChunk).ok());
  fs::path tool = lazy->tree_dir() / "usr/bin/tool";
  lazy.reset();
  fs::path dir = lazy_->lazy_layer_dir(diff_id_);
  WriteFile(dir / "chunks.boot", "a boot before this one\n");
  int fd = ::open(tool.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string lost(kChunk, '\0');
  ASSERT_EQ(::pwrite(fd, lost.data(), lost.size(), kChunk), static_cast<ssize_t>(kChunk));
  ::close(fd);
  lazy = OpenLazy();
  ASSERT_TRUE(lazy);
  EXPECT_EQ(lazy->stats().verified_chunks, 1u) << "chunk 1's data was lost";
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, 2 * kChunk).ok());
  EXPECT_EQ(lazy->stats().requests, 1u);
  EXPECT_EQ(BlobGets(4), 4);
  EXPECT_EQ(PreadAll(tool, 0, 2 * kChunk), big_.substr(0, 2 * kChunk));
}

// Complete on two threads while three readers read whole files: they share the fetches (no
// byte of the blob comes twice) and all end with the right bytes in the installed layer.
TEST_F(LazyLayerTest, ReadersDuringCompleteShareItsFetches) {
  LazyLayerOptions o;
  o.max_request = kChunk;
  o.jobs = 2;
  auto lazy = OpenLazy(o);
  ASSERT_TRUE(lazy);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  threads.emplace_back([&] { failures += lazy->Complete().ok() ? 0 : 1; });
  for (const char* path : {"usr/bin/tool", "usr/bin/other", "etc/os-release"})
    threads.emplace_back([&, path] { failures += lazy->EnsureRange(path, 0, UINT64_MAX).ok() ? 0 : 1; });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(lazy->stats().fetched_bytes, blob_.size);
  EXPECT_EQ(ReadFile(lazy->tree_dir() / "usr/bin/tool"), big_);
  EXPECT_EQ(ReadFile(lazy->tree_dir() / "usr/bin/other"), RandomBytes(100000, 9));
  EXPECT_TRUE(LayerStore(*lazy_).Has(diff_id_));
}

// The background goes through the image's gate and a reader does not: with the only
// background slot taken, a Complete already waiting sends nothing, and a reader of a file in
// Complete's first batch is not held behind it.
TEST_F(LazyLayerTest, CompleteWaitsForTheGateAndReadersDoNot) {
  LazyLayerOptions o;
  o.max_request = kChunk;
  o.gate = std::make_shared<FetchGate>(1);
  auto lazy = OpenLazy(o);
  ASSERT_TRUE(lazy);
  const uint64_t opened = lazy->stats().requests;
  std::optional<FetchGate::Background> taken(std::in_place, *o.gate);
  std::thread complete([&] { EXPECT_TRUE(lazy->Complete().ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto reader = std::async(std::launch::async, [&] { return lazy->EnsureRange("etc/os-release", 0, UINT64_MAX); });
  bool answered = reader.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(answered) << "the reader waited behind the gate";
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(lazy->stats().requests, opened + 1);  // the reader's, and no background one
  taken.reset();
  complete.join();
  EXPECT_TRUE(reader.get().ok());
  EXPECT_TRUE(LayerStore(*lazy_).Has(diff_id_));
}

// Without root (a child as nobody, its own store): the tree keeps the layer's modes, and
// files without the owner's write bit (usr/bin/other is 0555, etc/shadow 0000) still fill
// and complete.
TEST_F(LazyLayerTest, WithoutRootReadOnlyFilesFillAndComplete) {
  constexpr uid_t kNobody = 65534;
  fs::path root = dir_.path() / "rootless";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::chown(root.c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setresgid(kNobody, kNobody, kNobody) != 0 || ::setresuid(kNobody, kNobody, kNobody) != 0) ::_exit(10);
    auto store = Store::Open(root);
    if (!store.ok()) ::_exit(11);
    auto l = LazyLayer::Open(*store, *client_, kRepo, blob_, diff_id_);
    if (!l.ok()) ::_exit(12);
    fs::path other = (*l)->tree_dir() / "usr/bin/other";
    if (!(*l)->EnsureRange("usr/bin/other", 0, 100000).ok()) ::_exit(13);
    struct stat st;
    if (::stat(other.c_str(), &st) != 0 || (st.st_mode & 07777) != 0555) ::_exit(14);
    if (PreadAll(other, 0, 100000) != RandomBytes(100000, 9)) ::_exit(15);
    if (!(*l)->EnsureRange("etc/shadow", 0, 100).ok()) ::_exit(13);  // mode 0000
    ::_exit((*l)->Complete().ok() ? 0 : 16);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "10 setuid, 11 store, 12 open, 13 read, 14 mode, 15 bytes, 16 complete";
  auto store = Store::Open(root);
  ASSERT_TRUE(store.ok());
  auto installed = LayerStore(*store).ReadIndex(diff_id_);
  ASSERT_TRUE(installed.ok()) << installed.status().message();
  ExpectSameIndex(*installed, EagerIndex());
}

TEST_F(LazyLayerTest, CompleteMakesAnOrdinaryLayerEqualToTheEagerOne) {
  LazyLayerOptions o;
  o.max_request = kChunk;  // a batch per chunk or two, three fetching at once
  o.jobs = 3;
  auto lazy = OpenLazy(o);
  ASSERT_TRUE(lazy);
  ASSERT_TRUE(lazy->EnsureRange("usr/bin/tool", kChunk, 10).ok());
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  Status st = lazy->Complete([&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(blob_.size, blob_.size));
  EXPECT_EQ(lazy->stats().fetched_bytes, blob_.size) << "every byte of the blob fetched once";
  EXPECT_TRUE(LayerStore(*lazy_).Has(diff_id_));
  EXPECT_TRUE(BlobStore(*lazy_).Has(blob_.digest));
  EXPECT_FALSE(fs::exists(lazy_->lazy_layer_dir(diff_id_)));
  EXPECT_EQ(lazy->tree_dir(), lazy_->layer_tree(diff_id_));
  LayerIndex eager = EagerIndex();
  auto installed = LayerStore(*lazy_).ReadIndex(diff_id_);
  ASSERT_TRUE(installed.ok());
  ExpectSameIndex(*installed, eager);
  for (const LayerEntry& e : eager.entries()) {
    if (e.type != EntryType::kRegular) continue;
    fs::path a = lazy_->layer_tree(diff_id_) / e.path, b = eager_->layer_tree(diff_id_) / e.path;
    EXPECT_EQ(ReadFile(a), ReadFile(b)) << e.path;
    struct stat sa, sb;
    ASSERT_EQ(::lstat(a.c_str(), &sa), 0);
    ASSERT_EQ(::lstat(b.c_str(), &sb), 0);
    EXPECT_EQ(sa.st_mode, sb.st_mode) << e.path;
    EXPECT_EQ(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec) << e.path;
    EXPECT_EQ(sa.st_nlink, sb.st_nlink) << e.path;
  }
  EXPECT_TRUE(lazy->EnsureRange("usr/bin/tool", 0, 1).ok());
  EXPECT_EQ(LazyLayer::Open(*lazy_, *client_, kRepo, blob_, diff_id_).status().code(), EEXIST);
}

}  // namespace
}  // namespace layerfs::testing
