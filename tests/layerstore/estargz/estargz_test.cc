// eStargz both ways: layers written by EstargzWriter (through ConvertLayerToEstargz) are plain
// tar.gz to any reader, carry a footer and TOC that the reader finds and verifies, and every
// chunk decompresses alone to the file's bytes and checks against its digest; tampering with a
// chunk or the TOC is caught. The TOC parser refuses hostile documents.
#include <zlib.h>

#include <gtest/gtest.h>

#include "layerstore/estargz/estargz_convert.h"
#include "layerstore/estargz/estargz_footer.h"
#include "layerstore/estargz/estargz_reader.h"
#include "layerstore/store/blob_store.h"
#include "tests/layerstore/test_util.h"

namespace layerfs::testing {
namespace {

// Every member of a multi-member gzip stream, inflated and concatenated (as gunzip does).
std::string GunzipAll(const std::string& in) {
  z_stream z = {};
  inflateInit2(&z, 16 + MAX_WBITS);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[1 << 16];
  while (z.avail_in > 0) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END) inflateReset(&z);
    else if (rc != Z_OK) {
      ADD_FAILURE() << "inflate: " << rc;
      break;
    }
  }
  inflateEnd(&z);
  return out;
}

// The names of a tar's entries, in order, read with libarchive.
std::vector<std::string> TarNames(const std::string& tar) {
  std::vector<std::string> names;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  EXPECT_EQ(archive_read_open_memory(a, tar.data(), tar.size()), ARCHIVE_OK);
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) names.emplace_back(archive_entry_pathname(e));
  archive_read_free(a);
  return names;
}

class EstargzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path() / "store");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::make_unique<Store>(std::move(*s));
    TarBuilder b;
    b.Dir("etc/").File("etc/os-release", "ID=test\n").File("etc/empty", "");
    b.Add({.path = "etc/attr", .data = "x", .uid = 1000, .gid = 100, .mtime_nsec = 123456789, .xattrs = {{"user.note", std::string("a\0b", 3)}}});
    b.Dir("usr/").Dir("usr/bin/").File("usr/bin/tool", big_, 0755).Hardlink("usr/bin/tool2", "usr/bin/tool");
    b.Symlink("usr/bin/sh", "tool").File("usr/.wh.gone", "").Dir("opt/").File("opt/.wh..wh..opq", "");
    source_ = b.Build(Compression::kGzip);
    auto d = BlobStore(*store_).PutBytes(source_);
    ASSERT_TRUE(d.ok());
    layer_ = Descriptor{kOciLayerGzipType, *d, source_.size(), nlohmann::json(), nlohmann::json()};
  }

  EstargzBlob Convert(const std::vector<std::string>& prefetch) {
    EstargzOptions o;
    o.prefetch = prefetch;
    o.chunk_size = 64 << 10;
    auto out = ConvertLayerToEstargz(*store_, layer_, o);
    EXPECT_TRUE(out.ok()) << out.status().message();
    return out.ok() ? *out : EstargzBlob();
  }

  std::string Blob(const EstargzBlob& b) { return ReadFile(BlobStore(*store_).Path(b.blob.digest)); }

  // The TOC of a converted blob, found through its footer and checked against its annotation.
  EstargzToc Toc(const EstargzBlob& b, uint64_t* toc_offset) {
    std::string blob = Blob(b);
    auto off = ParseEstargzFooter(std::string_view(blob).substr(blob.size() - kEstargzFooterSize));
    EXPECT_TRUE(off.ok()) << off.status().message();
    *toc_offset = off.ok() ? *off : 0;
    std::string_view member = std::string_view(blob).substr(*toc_offset, blob.size() - kEstargzFooterSize - *toc_offset);
    auto toc = ReadEstargzToc(member, *toc_offset, *Digest::Parse(b.blob.annotations[kEstargzTocDigestAnnotation].get<std::string>()));
    EXPECT_TRUE(toc.ok()) << toc.status().message();
    return toc.ok() ? *toc : EstargzToc();
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::string big_ = RandomBytes(300000, 7);  // five chunks of 64 KiB
  std::string source_;
  Descriptor layer_;
};

TEST_F(EstargzTest, BlobIsAPlainTarGzWithTheSameEntriesThenTheToc) {
  EstargzBlob b = Convert({});
  std::string tar = GunzipAll(Blob(b));
  EXPECT_EQ(Sha256Of(tar), b.diff_id);
  EXPECT_EQ(b.blob.annotations[kEstargzUncompressedSizeAnnotation], std::to_string(tar.size()));
  EXPECT_EQ(b.blob.media_type, kOciLayerGzipType);
  EXPECT_EQ(b.blob.size, Blob(b).size());
  std::vector<std::string> want = {kEstargzNoPrefetchLandmark};
  for (const std::string& n : TarNames(source_)) want.push_back(n);
  want.emplace_back(kEstargzTocName);
  EXPECT_EQ(TarNames(Blob(b)), want);
  EXPECT_EQ(Convert({}).blob.digest, b.blob.digest) << "the same layer converts to the same bytes";
}

TEST_F(EstargzTest, TocDescribesEveryEntryAndEveryChunkVerifies) {
  EstargzBlob b = Convert({});
  uint64_t toc_offset = 0;
  EstargzToc toc = Toc(b, &toc_offset);
  std::map<std::string, const EstargzTocEntry*> by_name;
  for (const auto& e : toc.entries)
    if (e.type != "chunk") by_name[CleanName(e.name)] = &e;
  ASSERT_TRUE(by_name.count("etc/attr") && by_name.count("usr/bin/tool2") && by_name.count("usr/bin/sh"));
  EXPECT_EQ(by_name["etc/attr"]->xattrs.at("user.note"), std::string("a\0b", 3));
  EXPECT_EQ(by_name["etc/attr"]->uid, 1000u);
  EXPECT_EQ(by_name["etc/attr"]->mtime_sec, 1700000000);
  EXPECT_EQ(by_name["etc/attr"]->mtime_nsec, 123456789u);
  EXPECT_EQ(by_name["usr/bin/tool2"]->type, "hardlink");
  EXPECT_EQ(by_name["usr/bin/tool2"]->link_name, "usr/bin/tool");
  EXPECT_EQ(by_name["usr/bin/sh"]->link_name, "tool");
  EXPECT_EQ(by_name["usr/bin/tool"]->mode & 07777, 0755u);
  EXPECT_EQ(by_name["usr/bin/tool"]->digest, Sha256Of(big_).str());
  ASSERT_TRUE(by_name.count("usr"));
  EXPECT_EQ(by_name["usr"]->type, "dir");

  std::string blob = Blob(b);
  auto chunks = EstargzChunks(toc, toc_offset);
  ASSERT_EQ(chunks["usr/bin/tool"].size(), 5u);
  for (const auto& [name, list] : chunks) {
    std::string file;
    for (const EstargzChunk& c : list) {
      EXPECT_EQ(c.file_offset, file.size()) << name;
      EXPECT_EQ(blob.substr(c.offset, 2), "\x1f\x8b") << name << ": a chunk starts a gzip member";
      auto data = ReadEstargzChunk(std::string_view(blob).substr(c.offset, c.end - c.offset), c);
      ASSERT_TRUE(data.ok()) << name << ": " << data.status().message();
      file += *data;
    }
    EXPECT_EQ(Sha256Of(file).str(), by_name[name]->digest) << name;
  }
  EXPECT_EQ(chunks["etc/os-release"].size(), 1u);
  EXPECT_EQ(chunks.count("etc/empty"), 0u);
}

TEST_F(EstargzTest, PrefetchedFilesComeFirstAfterTheirDirectoriesThenTheLandmark) {
  EstargzBlob b = Convert({"/usr/bin/tool", "/not/here", "usr/bin/sh"});
  uint64_t toc_offset = 0;
  EstargzToc toc = Toc(b, &toc_offset);
  std::vector<std::string> names;
  for (const auto& e : toc.entries)
    if (e.type != "chunk") names.push_back(e.name);
  ASSERT_GE(names.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4),
            (std::vector<std::string>{"usr/", "usr/bin/", "usr/bin/tool", kEstargzPrefetchLandmark}));
  EXPECT_EQ(names[4], "etc/") << "the rest in their original order";
  EXPECT_EQ(std::count(names.begin(), names.end(), "usr/bin/tool"), 1);
  EXPECT_EQ(Sha256Of(GunzipAll(Blob(b))), b.diff_id);
}

TEST_F(EstargzTest, TamperedChunkOrTocIsRefused) {
  EstargzBlob b = Convert({});
  uint64_t toc_offset = 0;
  EstargzToc toc = Toc(b, &toc_offset);
  std::string blob = Blob(b);
  EstargzChunk c = EstargzChunks(toc, toc_offset)["usr/bin/tool"][2];
  std::string member = blob.substr(c.offset, c.end - c.offset);
  member[member.size() / 2] ^= 0x40;
  EXPECT_FALSE(ReadEstargzChunk(member, c).ok());
  c.digest = Sha256Of("something else");
  auto wrong = ReadEstargzChunk(std::string_view(blob).substr(c.offset, c.end - c.offset), c);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), EIO);
  EXPECT_NE(wrong.status().message().find("is not the TOC's"), std::string::npos) << wrong.status().message();
  std::string_view toc_member = std::string_view(blob).substr(toc_offset, blob.size() - kEstargzFooterSize - toc_offset);
  EXPECT_FALSE(ReadEstargzToc(toc_member, toc_offset, Sha256Of("not the toc")).ok());
  EXPECT_FALSE(ReadEstargzToc(toc_member.substr(0, toc_member.size() / 2), toc_offset, Digest()).ok());
}

TEST(EstargzFooter, RoundTripsAndRefusesOtherBytes) {
  std::string f = EstargzFooter(0x1234abcd);
  ASSERT_EQ(f.size(), kEstargzFooterSize);
  EXPECT_EQ(f.substr(16, 22), "000000001234abcdSTARGZ");
  auto off = ParseEstargzFooter(f);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, 0x1234abcdu);
  EXPECT_EQ(GunzipAll(f), "") << "the footer is an empty gzip member";
  std::string bad = f;
  bad[33] = 'X';
  EXPECT_FALSE(ParseEstargzFooter(bad).ok());
  EXPECT_FALSE(ParseEstargzFooter(f.substr(1)).ok());
  bad = f;
  bad[20] = 'g';
  EXPECT_FALSE(ParseEstargzFooter(bad).ok());
}

TEST(EstargzToc, RefusesHostileDocuments) {
  const std::string digest = Sha256Of("x").str();
  auto parse = [](const std::string& json) { return ParseEstargzToc(json, 1000); };
  EXPECT_TRUE(parse(R"({"version":1,"entries":[{"name":"a/","type":"dir","mode":16877}]})").ok());
  EXPECT_FALSE(parse(R"({"version":2,"entries":[]})").ok());
  EXPECT_FALSE(parse(R"({"version":1})").ok());
  EXPECT_FALSE(parse(R"([1,2])").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"../etc/passwd","type":"reg"}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a/../../b","type":"dir"}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a","type":"socket"}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a","type":"symlink"}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a","type":"dir","uid":-1}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a","type":"dir","modtime":"yesterday"}]})").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"a","type":"dir","xattrs":{"user.x":"!!"}}]})").ok());
  std::string reg = R"({"name":"f","type":"reg","size":10,"offset":100,"chunkSize":4,"chunkDigest":")" + digest + R"("})";
  std::string chunk = R"({"name":"f","type":"chunk","offset":200,"chunkOffset":4,"chunkDigest":")" + digest + R"("})";
  EXPECT_TRUE(parse(R"({"version":1,"entries":[)" + reg + "," + chunk + "]}").ok());
  EXPECT_FALSE(parse(R"({"version":1,"entries":[)" + chunk + "]}").ok()) << "a chunk without its file";
  std::string gap = R"({"name":"f","type":"chunk","offset":200,"chunkOffset":5,"chunkDigest":")" + digest + R"("})";
  EXPECT_FALSE(parse(R"({"version":1,"entries":[)" + reg + "," + gap + "]}").ok());
  std::string past = R"({"name":"f","type":"reg","size":10,"offset":1000,"chunkDigest":")" + digest + R"("})";
  EXPECT_FALSE(parse(R"({"version":1,"entries":[)" + past + "]}").ok()) << "data at or after the TOC";
  EXPECT_FALSE(parse(R"({"version":1,"entries":[{"name":"f","type":"reg","size":3,"offset":9}]})").ok())
      << "no chunkDigest";
}

TEST(EstargzToc, ModtimesRoundTripWithFractionsAndOffsets) {
  EstargzToc toc;
  toc.entries.push_back({.name = "a", .type = "dir", .mtime_sec = 1700000000, .mtime_nsec = 500000000});
  std::string json = EstargzTocJson(toc);
  EXPECT_NE(json.find(R"("modtime":"2023-11-14T22:13:20.5Z")"), std::string::npos) << json;
  auto back = ParseEstargzToc(json, 10);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries[0].mtime_sec, 1700000000);
  EXPECT_EQ(back->entries[0].mtime_nsec, 500000000u);
  auto zoned = ParseEstargzToc(R"({"version":1,"entries":[{"name":"a","type":"dir","modtime":"2023-11-15T00:13:20+02:00"}]})", 10);
  ASSERT_TRUE(zoned.ok());
  EXPECT_EQ(zoned->entries[0].mtime_sec, 1700000000);
}

}  // namespace
}  // namespace layerfs::testing
