// MergedIndex: merge semantics (whiteouts, opaque dirs, hard links, implicit parents), the
// flat layout contract (sorted contiguous children, parent < child), persist + load round
// trip, corrupt cache files, and a 128-layer merge.
#include "fs/index/merged_index.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "layerstore/oci/image.h"
#include "layerstore/store/store.h"

namespace layerfs {
namespace {

LayerEntry File(const std::string& path, uint64_t size = 1, uint32_t group = 0) {
  LayerEntry e;
  e.path = path;
  e.mode = 0644;
  e.size = size;
  e.hardlink_group = group;
  return e;
}

LayerEntry Dir(const std::string& path, bool opaque = false) {
  LayerEntry e;
  e.path = path;
  e.type = EntryType::kDirectory;
  e.mode = 0755;
  e.opaque = opaque;
  return e;
}

LayerEntry Whiteout(const std::string& path) {
  LayerEntry e;
  e.path = path;
  e.type = EntryType::kWhiteout;
  return e;
}

LayerIndex Layer(std::vector<LayerEntry> entries) {
  LayerIndex index;
  index.entries() = std::move(entries);
  index.Sort();
  return index;
}

MergedIndex Merge(const std::vector<LayerIndex>& layers) {
  std::vector<const LayerIndex*> ptrs;
  ptrs.reserve(layers.size());
  for (const auto& l : layers) ptrs.push_back(&l);
  auto r = MergedIndex::Build(ptrs, Sha256Of("chain"));
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

std::set<std::string> AllPaths(const MergedIndex& m) {
  std::set<std::string> out;
  for (uint32_t i = 1; i < m.size(); ++i) out.insert(m.Path(i));
  return out;
}

class TempStore {
 public:
  TempStore() {
    char tmpl[] = "/tmp/layerfs-midx-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::make_unique<Store>(Store::Open(dir_).value());
  }
  ~TempStore() { std::filesystem::remove_all(dir_); }
  const Store& store() const { return *store_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST(MergedIndex, UpperLayerWinsAndParentsAreImplicit) {
  auto a = Layer({File("bin/sh", 10), File("etc/passwd", 5)});
  auto b = Layer({File("etc/passwd", 7), File("usr/lib/x", 3)});
  MergedIndex m = Merge({a, b});
  EXPECT_EQ(AllPaths(m), (std::set<std::string>{"bin", "bin/sh", "etc", "etc/passwd", "usr", "usr/lib", "usr/lib/x"}));
  auto passwd = m.LookupPath("etc/passwd");
  ASSERT_TRUE(passwd);
  EXPECT_EQ(m.node(*passwd).size, 7u);
  EXPECT_EQ(m.node(*passwd).layer, 1);
  EXPECT_EQ(m.node(*m.LookupPath("bin/sh")).layer, 0);
  EXPECT_TRUE(S_ISDIR(m.node(*m.LookupPath("usr/lib")).mode));
}

TEST(MergedIndex, WhiteoutDeletesEntryAndSubtree) {
  auto a = Layer({Dir("d"), File("d/a"), Dir("d/sub"), File("d/sub/x"), File("f")});
  auto b = Layer({Whiteout("d/sub"), Whiteout("f")});
  MergedIndex m = Merge({a, b});
  EXPECT_EQ(AllPaths(m), (std::set<std::string>{"d", "d/a"}));
  EXPECT_FALSE(m.LookupPath("d/sub/x"));
}

TEST(MergedIndex, OpaqueDirHidesLowerChildrenButKeepsItsOwn) {
  auto a = Layer({Dir("d"), File("d/old"), File("keep")});
  auto b = Layer({Dir("d", /*opaque=*/true), File("d/new")});
  MergedIndex m = Merge({a, b});
  EXPECT_EQ(AllPaths(m), (std::set<std::string>{"d", "d/new", "keep"}));
  EXPECT_EQ(m.node(*m.LookupPath("d")).nlink, 2u);  // one layer in the stack after opaque
}

TEST(MergedIndex, TypeChangeReplacesSubtree) {
  auto a = Layer({Dir("x"), File("x/child")});
  auto b = Layer({File("x", 4)});
  MergedIndex m = Merge({a, b});
  EXPECT_EQ(AllPaths(m), (std::set<std::string>{"x"}));
  EXPECT_TRUE(S_ISREG(m.node(*m.LookupPath("x")).mode));
}

TEST(MergedIndex, HardLinksShareInoAndCountTheLayersLinks) {
  auto a = Layer({File("a", 3, 1), File("b", 3, 1), File("c", 3, 1), File("lone")});
  auto b = Layer({Whiteout("c")});
  MergedIndex m = Merge({a, b});
  uint32_t ia = *m.LookupPath("a"), ib = *m.LookupPath("b");
  EXPECT_EQ(m.node(ia).ino_node, m.node(ib).ino_node);
  EXPECT_EQ(m.node(ia).nlink, 3u);  // the layer's inode has 3 links (overlayfs shows that)
  EXPECT_EQ(m.node(ib).nlink, 3u);
  EXPECT_EQ(m.node(ia).hidden_links, 1u);
  uint32_t lone = *m.LookupPath("lone");
  EXPECT_EQ(m.node(lone).ino_node, lone);
  EXPECT_EQ(m.node(lone).nlink, 1u);
}

TEST(MergedIndex, DirectoryNlinkFollowsOverlayfs) {
  auto a = Layer({Dir("one"), Dir("one/s1"), Dir("one/s2"), Dir("both"), Dir("both/s")});
  auto b = Layer({Dir("both"), File("both/f")});
  MergedIndex m = Merge({a, b});
  EXPECT_EQ(m.node(*m.LookupPath("one")).nlink, 4u);   // one layer: 2 + subdirs
  EXPECT_EQ(m.node(*m.LookupPath("both")).nlink, 1u);  // merged from two layers
}

TEST(MergedIndex, ChildrenContiguousSortedAndParentsFirst) {
  auto a = Layer({File("z"), File("a"), Dir("m"), File("m/b"), File("m/a"), File("B")});
  MergedIndex m = Merge({a});
  for (uint32_t i = 0; i < m.size(); ++i) {
    const MergedNode& n = m.node(i);
    if (i > 0) EXPECT_LT(n.parent, i);
    for (uint32_t c = n.first_child; c < n.first_child + n.child_count; ++c) {
      EXPECT_EQ(m.node(c).parent, i);
      if (c > n.first_child) EXPECT_LT(m.name(c - 1), m.name(c));
    }
  }
  EXPECT_EQ(m.Lookup(MergedIndex::kRoot, "B"), m.node(0).first_child);  // byte order: 'B' < 'a'
  EXPECT_FALSE(m.Lookup(MergedIndex::kRoot, "q"));
}

TEST(MergedIndex, SymlinksAndXattrsRoundTrip) {
  LayerEntry link;
  link.path = "l";
  link.type = EntryType::kSymlink;
  link.link_target = "../target";
  LayerEntry f = File("f");
  f.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.k", "v"}};
  MergedIndex m = Merge({Layer({link, f})});
  uint32_t il = *m.LookupPath("l");
  EXPECT_EQ(m.LinkTarget(il), "../target");
  EXPECT_EQ(m.node(il).size, 9u);
  auto x = m.Xattrs(*m.LookupPath("f"));
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x[0].first, "security.capability");
  EXPECT_EQ(x[0].second, std::string("\x01\x00\x00\x02", 4));
  EXPECT_EQ(x[1].second, "v");
}

TEST(MergedIndex, PersistAndLoadRoundTrip) {
  TempStore ts;
  auto a = Layer({Dir("d"), File("d/f", 42, 3), File("g", 42, 3)});
  MergedIndex built = Merge({a});
  auto file = MergedIndex::CachePath(ts.store(), Sha256Of("chain"));
  ASSERT_TRUE(built.Write(ts.store(), file).ok());
  auto loaded = MergedIndex::Load(file, Sha256Of("chain"), 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  ASSERT_EQ(loaded->size(), built.size());
  for (uint32_t i = 0; i < built.size(); ++i) {
    EXPECT_EQ(std::memcmp(&loaded->node(i), &built.node(i), sizeof(MergedNode)), 0);
    EXPECT_EQ(loaded->Path(i), built.Path(i));
  }
  EXPECT_FALSE(MergedIndex::Load(file, Sha256Of("other"), 1).ok());
  EXPECT_FALSE(MergedIndex::Load(file, Sha256Of("chain"), 2).ok());
}

// A one-directory chain's merged index written to `file`; returns the file's bytes ("" if the
// write failed), for tests that corrupt them.
std::string WriteSmallCache(const TempStore& ts, const std::filesystem::path& file) {
  MergedIndex built = Merge({Layer({Dir("d"), File("d/f")})});
  if (!built.Write(ts.store(), file).ok()) return "";
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(MergedIndex, CorruptCacheIsRejectedWithClearError) {
  TempStore ts;
  auto file = MergedIndex::CachePath(ts.store(), Sha256Of("chain"));
  std::string bytes = WriteSmallCache(ts, file);
  ASSERT_FALSE(bytes.empty());
  auto write = [&](const std::string& b) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << b;
  };
  write(bytes.substr(0, bytes.size() - 3));  // truncated
  auto r = MergedIndex::Load(file, Sha256Of("chain"), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("corrupt merged index"), std::string::npos);
  std::string bad = bytes;
  auto* node1 = reinterpret_cast<MergedNode*>(bad.data() + 128 + sizeof(MergedNode));
  node1->parent = 99;  // points past itself
  write(bad);
  EXPECT_FALSE(MergedIndex::Load(file, Sha256Of("chain"), 1).ok());
  bad = bytes;
  bad[0] = 'X';
  write(bad);
  EXPECT_FALSE(MergedIndex::Load(file, Sha256Of("chain"), 1).ok());
  write("");
  EXPECT_FALSE(MergedIndex::Load(file, Sha256Of("chain"), 1).ok());
}

// Offsets and sizes whose sums wrap around 2^64 passed the bounds checks (the names table or
// the extra table then began outside the mapping, and a name or link read went there). Found
// by reading Attach while writing tests/fuzz/merged_index_fuzz; confirmed with these files.
TEST(MergedIndex, HeaderSizesThatWrapAroundAreRejected) {
  TempStore ts;
  auto file = MergedIndex::CachePath(ts.store(), Sha256Of("chain"));
  std::string bytes = WriteSmallCache(ts, file);
  ASSERT_FALSE(bytes.empty());
  // FileHeader (merged_index.cc): names_off at 32, names_size at 40, extra_off at 48, extra_size at 56.
  auto field = [](std::string* b, size_t off) { return reinterpret_cast<uint64_t*>(b->data() + off); };
  auto load_patched = [&](const std::function<void(std::string*)>& patch) {
    std::string bad = bytes;
    patch(&bad);
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bad;
    return MergedIndex::Load(file, Sha256Of("chain"), 1);
  };
  auto names_wrap = load_patched([&](std::string* b) {
    *field(b, 40) = 0 - *field(b, 32) + *field(b, 40);  // names_off + names_size == old names_size
    reinterpret_cast<MergedNode*>(b->data() + 128 + sizeof(MergedNode))->name_off = 0x7ffffff0;
  });
  ASSERT_FALSE(names_wrap.ok());
  EXPECT_NE(names_wrap.status().message().find("corrupt merged index"), std::string::npos);
  auto extra_wrap = load_patched([&](std::string* b) {
    *field(b, 48) = uint64_t{0} - 4096;  // extra table 4 KiB before the mapping
    *field(b, 56) = b->size() + 4096;    // extra_off + extra_size == file length
  });
  EXPECT_FALSE(extra_wrap.ok());
}

TEST(MergedIndex, Merges128LayersAndStaysCompact) {
  std::vector<LayerIndex> layers;
  for (int l = 0; l < 128; ++l) {
    std::vector<LayerEntry> entries;
    entries.reserve(1000);
    for (int i = 0; i < 1000; ++i)
      entries.push_back(File("d" + std::to_string(i % 10) + "/l" + std::to_string(l) + "_" + std::to_string(i)));
    if (l > 0) entries.push_back(Whiteout("d0/l" + std::to_string(l - 1) + "_0"));
    layers.push_back(Layer(std::move(entries)));
  }
  MergedIndex m = Merge(layers);
  EXPECT_EQ(m.size(), 1u + 10u + 128u * 1000u - 127u);
  EXPECT_FALSE(m.LookupPath("d0/l5_0"));
  EXPECT_TRUE(m.LookupPath("d0/l127_0"));
  EXPECT_TRUE(m.LookupPath("d3/l0_3"));
  EXPECT_EQ(m.node(*m.LookupPath("d3/l0_3")).layer, 0);
  EXPECT_LE(m.bytes() / m.size(), 128u) << "bytes per entry";
}

}  // namespace
}  // namespace layerfs
