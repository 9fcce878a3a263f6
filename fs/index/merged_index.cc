#include "fs/index/merged_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <unordered_map>

#include "layerstore/oci/image.h"
#include "layerstore/store/layer_store.h"

namespace layerfs {

namespace {

constexpr char kMagic[8] = {'L', 'F', 'S', 'M', 'E', 'R', 'G', 'E'};

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t node_count;
  uint32_t layer_count;
  uint32_t reserved;
  uint64_t nodes_off;
  uint64_t names_off;
  uint64_t names_size;
  uint64_t extra_off;
  uint64_t extra_size;
  char chain_hex[64];
};
static_assert(sizeof(FileHeader) == 128);

// A node of the tree being merged; flattened breadth-first once all layers are applied.
struct BuildNode {
  const LayerEntry* entry = nullptr;  // null: implicit directory (a tar without "dir/" entry)
  uint16_t layer = 0;
  // Directories: how many layers hold this directory since the last opaque one. Overlayfs
  // shows nlink 1 for a directory merged from several layers, the real count otherwise.
  uint32_t stack = 0;
  int32_t last_layer = -1;
  std::map<std::string, std::unique_ptr<BuildNode>, std::less<>> children;

  bool is_dir() const { return entry == nullptr || entry->type == EntryType::kDirectory; }
  void Touch(uint16_t l) {
    if (last_layer != l) ++stack;
    last_layer = l;
  }
};

uint32_t TypeBits(EntryType t) {
  switch (t) {
    case EntryType::kDirectory: return S_IFDIR;
    case EntryType::kSymlink: return S_IFLNK;
    case EntryType::kFifo: return S_IFIFO;
    case EntryType::kCharDevice: return S_IFCHR;
    case EntryType::kBlockDevice: return S_IFBLK;
    case EntryType::kSocket: return S_IFSOCK;
    default: return S_IFREG;
  }
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty() && part != ".") parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

// Finds or creates the directory `name` under `dir`; a non-directory there is replaced, as a
// tar extracting "name/child" over a file would.
BuildNode* EnsureDir(BuildNode* dir, std::string_view name, uint16_t layer) {
  auto it = dir->children.find(name);
  if (it != dir->children.end() && it->second->is_dir()) {
    it->second->Touch(layer);
    return it->second.get();
  }
  auto node = std::make_unique<BuildNode>();
  node->layer = layer;
  node->Touch(layer);
  BuildNode* raw = node.get();
  dir->children.insert_or_assign(std::string(name), std::move(node));
  return raw;
}

void ApplyEntry(BuildNode* root, const LayerEntry& e, uint16_t layer) {
  std::vector<std::string_view> parts = SplitPath(e.path);
  if (parts.empty()) {  // the root itself
    if (e.type != EntryType::kDirectory) return;
    if (e.opaque) {
      root->children.clear();
      root->stack = 0;
    }
    root->Touch(layer);
    root->entry = &e;
    root->layer = layer;
    return;
  }
  BuildNode* dir = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) dir = EnsureDir(dir, parts[i], layer);
  std::string_view leaf = parts.back();
  auto it = dir->children.find(leaf);
  if (e.type == EntryType::kWhiteout) {
    if (it != dir->children.end()) dir->children.erase(it);
    return;
  }
  bool merge = e.type == EntryType::kDirectory && it != dir->children.end() && it->second->is_dir();
  if (merge) {
    if (e.opaque) {
      it->second->children.clear();
      it->second->stack = 0;
      it->second->last_layer = -1;
    }
    it->second->Touch(layer);
    it->second->entry = &e;
    it->second->layer = layer;
    return;
  }
  auto node = std::make_unique<BuildNode>();
  node->entry = &e;
  node->layer = layer;
  node->Touch(layer);
  dir->children.insert_or_assign(std::string(leaf), std::move(node));
}

void AppendU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

class Serializer {
 public:
  // layer_links: (layer << 32 | group) -> members of the group in that layer's tar.
  Serializer(BuildNode* root, uint32_t layer_count, const Digest& chain,
             std::unordered_map<uint64_t, uint32_t> layer_links)
      : chain_(chain), layers_(layer_count), layer_links_(std::move(layer_links)) {
    order_.push_back(root);
    names_of_.push_back("");
  }

  std::string Run() {
    Flatten();
    LinkHardLinks();
    return Assemble();
  }

 private:
  void Flatten() {
    nodes_.reserve(order_.size());
    for (size_t i = 0; i < order_.size(); ++i) {
      BuildNode* b = order_[i];
      MergedNode n{};
      n.name_off = static_cast<uint32_t>(names_.size());
      n.name_len = static_cast<uint16_t>(names_of_[i].size());
      names_ += names_of_[i];
      n.parent = i == 0 ? 0 : parent_of_[i];
      n.layer = b->layer;
      n.first_child = static_cast<uint32_t>(order_.size());
      n.child_count = static_cast<uint32_t>(b->children.size());
      uint32_t subdirs = 0;
      for (auto& [name, child] : b->children) {
        order_.push_back(child.get());
        names_of_.push_back(name);
        parent_of_.push_back(static_cast<uint32_t>(i));
        subdirs += child->is_dir() ? 1 : 0;
      }
      FillMetadata(b, &n);
      n.nlink = !b->is_dir() ? 1 : (b->stack > 1 ? 1 : 2 + subdirs);
      n.ino_node = static_cast<uint32_t>(i);
      nodes_.push_back(n);
    }
  }

  void FillMetadata(const BuildNode* b, MergedNode* n) {
    n->link_off = MergedIndex::kNone;
    n->xattr_off = MergedIndex::kNone;
    if (b->entry == nullptr) {
      n->type = static_cast<uint8_t>(EntryType::kDirectory);
      n->mode = S_IFDIR | 0755;
      return;
    }
    const LayerEntry& e = *b->entry;
    n->type = static_cast<uint8_t>(e.type);
    n->mode = TypeBits(e.type) | (e.mode & 07777);
    n->uid = e.uid;
    n->gid = e.gid;
    n->size = e.type == EntryType::kDirectory ? 0 : e.size;
    n->mtime_sec = e.mtime_sec;
    n->mtime_nsec = e.mtime_nsec;
    n->rdev = e.rdev;
    if (e.type == EntryType::kSymlink) {
      n->link_off = static_cast<uint32_t>(extra_.size());
      AppendU32(extra_, static_cast<uint32_t>(e.link_target.size()));
      extra_ += e.link_target;
      n->size = e.link_target.size();
    }
    if (!e.xattrs.empty()) {
      n->xattr_off = static_cast<uint32_t>(extra_.size());
      AppendU32(extra_, static_cast<uint32_t>(e.xattrs.size()));
      for (const auto& [k, v] : e.xattrs) {
        AppendU32(extra_, static_cast<uint32_t>(k.size()));
        extra_ += k;
        AppendU32(extra_, static_cast<uint32_t>(v.size()));
        extra_ += v;
      }
    }
  }

  // Members of one hard-link group (same layer, same group) that survived the merge share the
  // st_ino of the first member. nlink is the tree's (overlayfs shows the lower inode's count,
  // links hidden by upper layers included); hidden_links lets the mount keep that figure
  // after copy-up, when only the visible links exist in the upper.
  void LinkHardLinks() {
    std::unordered_map<uint64_t, std::vector<uint32_t>> groups;
    for (uint32_t i = 0; i < order_.size(); ++i) {
      const LayerEntry* e = order_[i]->entry;
      if (e == nullptr || e->hardlink_group == 0 || e->type == EntryType::kDirectory) continue;
      groups[(uint64_t{order_[i]->layer} << 32) | e->hardlink_group].push_back(i);
    }
    for (auto& [key, members] : groups) {
      uint32_t in_layer = std::max<uint32_t>(layer_links_[key], static_cast<uint32_t>(members.size()));
      for (uint32_t m : members) {
        nodes_[m].nlink = in_layer;
        nodes_[m].hidden_links = static_cast<uint16_t>(std::min<uint32_t>(in_layer - members.size(), 0xffff));
        nodes_[m].ino_node = members.front();
      }
    }
  }

  std::string Assemble() {
    FileHeader h{};
    std::memcpy(h.magic, kMagic, sizeof(kMagic));
    h.version = MergedIndex::kVersion;
    h.node_count = static_cast<uint32_t>(nodes_.size());
    h.layer_count = layers_;
    h.nodes_off = sizeof(FileHeader);
    h.names_off = h.nodes_off + nodes_.size() * sizeof(MergedNode);
    h.names_size = names_.size();
    h.extra_off = (h.names_off + h.names_size + 7) & ~uint64_t{7};
    h.extra_size = extra_.size();
    std::memcpy(h.chain_hex, chain_.hex().data(), std::min<size_t>(64, chain_.hex().size()));
    std::string out;
    out.reserve(h.extra_off + h.extra_size);
    out.append(reinterpret_cast<const char*>(&h), sizeof(h));
    out.append(reinterpret_cast<const char*>(nodes_.data()), nodes_.size() * sizeof(MergedNode));
    out += names_;
    out.resize(h.extra_off, '\0');
    out += extra_;
    return out;
  }

  const Digest& chain_;
  uint32_t layers_;
  std::vector<BuildNode*> order_;
  std::vector<std::string_view> names_of_;
  std::vector<uint32_t> parent_of_{0};
  std::unordered_map<uint64_t, uint32_t> layer_links_;
  std::vector<MergedNode> nodes_;
  std::string names_;
  std::string extra_;
};

uint32_t ReadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

// Either an owned buffer (just built) or a read-only mapping of the cache file.
struct MergedIndex::Storage {
  std::string owned;
  void* map = nullptr;
  size_t map_len = 0;
  ~Storage() {
    if (map != nullptr) ::munmap(map, map_len);
  }
  const char* data() const { return map != nullptr ? static_cast<const char*>(map) : owned.data(); }
  size_t size() const { return map != nullptr ? map_len : owned.size(); }
};

MergedIndex::MergedIndex() = default;
MergedIndex::~MergedIndex() = default;
MergedIndex::MergedIndex(MergedIndex&&) noexcept = default;
MergedIndex& MergedIndex::operator=(MergedIndex&&) noexcept = default;

Result<MergedIndex> MergedIndex::Build(const std::vector<const LayerIndex*>& layers, const Digest& chain_id) {
  if (layers.size() > 0xffff) return Status::Error(EINVAL, "too many layers to merge");
  std::unordered_map<uint64_t, uint32_t> layer_links;
  for (size_t l = 0; l < layers.size(); ++l)
    for (const LayerEntry& e : layers[l]->entries())
      if (e.hardlink_group != 0 && e.type != EntryType::kDirectory && e.type != EntryType::kWhiteout)
        ++layer_links[(uint64_t{l} << 32) | e.hardlink_group];
  BuildNode root;
  for (size_t l = 0; l < layers.size(); ++l) {
    root.Touch(static_cast<uint16_t>(l));  // every layer has a root
    for (const LayerEntry& e : layers[l]->entries()) ApplyEntry(&root, e, static_cast<uint16_t>(l));
  }
  auto storage = std::make_unique<Storage>();
  storage->owned = Serializer(&root, static_cast<uint32_t>(layers.size()), chain_id, std::move(layer_links)).Run();
  MergedIndex index;
  RETURN_IF_ERROR(index.Attach(std::move(storage), "built merged index"));
  return index;
}

// Validates every offset so a damaged or hostile cache file cannot make a reader go out of
// bounds; parent < child keeps Path() finite.
Status MergedIndex::Attach(std::unique_ptr<Storage> storage, const std::string& where) {
  auto bad = [&](const std::string& why) { return Status::Error(EINVAL, "corrupt merged index " + where + ": " + why); };
  const char* base = storage->data();
  size_t len = storage->size();
  if (len < sizeof(FileHeader)) return bad("truncated header");
  FileHeader h;
  std::memcpy(&h, base, sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) return bad("bad magic");
  if (h.version != kVersion) return bad("unsupported version " + std::to_string(h.version));
  // Each size and offset is at most the file's length before any is added to another, so no
  // sum below can wrap around and pass for a small one.
  if (h.names_size > len || h.extra_off > len || h.extra_size > len) return bad("inconsistent sizes");
  if (h.node_count == 0 || h.nodes_off != sizeof(FileHeader) ||
      h.names_off != h.nodes_off + uint64_t{h.node_count} * sizeof(MergedNode) ||
      h.names_off + h.names_size > len || h.extra_off < h.names_off + h.names_size ||
      h.extra_off + h.extra_size != len || h.extra_size >= kNone)
    return bad("inconsistent sizes");
  const auto* nodes = reinterpret_cast<const MergedNode*>(base + h.nodes_off);
  for (uint32_t i = 0; i < h.node_count; ++i) {
    const MergedNode& n = nodes[i];
    bool dir = n.type == static_cast<uint8_t>(EntryType::kDirectory);
    if (uint64_t{n.name_off} + n.name_len > h.names_size || n.type >= static_cast<uint8_t>(EntryType::kWhiteout) ||
        (i > 0 && n.parent >= i) || (i == 0 && !dir) || n.ino_node > i || n.layer >= h.layer_count + (h.layer_count == 0) ||
        (n.child_count > 0 && (!dir || n.first_child <= i || uint64_t{n.first_child} + n.child_count > h.node_count)) ||
        (n.link_off != kNone && uint64_t{n.link_off} + 4 > h.extra_size) ||
        (n.xattr_off != kNone && uint64_t{n.xattr_off} + 4 > h.extra_size))
      return bad("node " + std::to_string(i) + " out of bounds");
  }
  storage_ = std::move(storage);
  nodes_ = nodes;
  names_ = base + h.names_off;
  extra_ = base + h.extra_off;
  count_ = h.node_count;
  layer_count_ = h.layer_count;
  names_size_ = h.names_size;
  extra_size_ = h.extra_size;
  bytes_ = len;
  chain_hex_.assign(h.chain_hex, 64);
  return Status::Ok();
}

Result<MergedIndex> MergedIndex::Load(const std::filesystem::path& file, const Digest& chain_id,
                                      uint32_t layer_count) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("merged index " + file.string());
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return Status::Error(EINVAL, "corrupt merged index " + file.string() + ": empty");
  }
  void* map = ::mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Status::FromErrno("mmap " + file.string());
  auto storage = std::make_unique<Storage>();
  storage->map = map;
  storage->map_len = st.st_size;
  MergedIndex index;
  RETURN_IF_ERROR(index.Attach(std::move(storage), file.string()));
  if (index.layer_count_ != layer_count || index.chain_hex_ != chain_id.hex())
    return Status::Error(EINVAL, "corrupt merged index " + file.string() + ": belongs to another chain");
  return index;
}

Status MergedIndex::Write(const Store& store, const std::filesystem::path& file) const {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) return Status::Error(ec.value(), "create " + file.parent_path().string() + ": " + ec.message());
  return WriteFileAtomic(store, file, std::string_view(storage_->data(), storage_->size()));
}

Status MergedIndex::WriteBeside(const std::filesystem::path& file, mode_t mode) const {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path tmp = file;
  tmp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  return WriteFileAtomicVia(tmp, file, std::string_view(storage_->data(), storage_->size()), mode);
}

std::filesystem::path MergedIndex::CachePath(const Store& store, const Digest& chain_id) {
  return store.chain_dir(chain_id) / "merged";
}

Result<MergedIndex> MergedIndex::LoadOrBuild(const Store& store, const std::vector<Digest>& layers) {
  Digest chain = ChainId(layers);
  auto path = CachePath(store, chain);
  auto cached = Load(path, chain, static_cast<uint32_t>(layers.size()));
  if (cached.ok()) return cached;
  LayerStore layer_store(store);
  std::vector<LayerIndex> indexes;
  indexes.reserve(layers.size());
  for (const Digest& d : layers) {
    auto index = layer_store.ReadIndex(d);
    if (!index.ok()) return index.status().WithContext("layer " + d.str());
    indexes.push_back(std::move(index).value());
  }
  std::vector<const LayerIndex*> ptrs;
  ptrs.reserve(indexes.size());
  for (const auto& i : indexes) ptrs.push_back(&i);
  ASSIGN_OR_RETURN(MergedIndex built, Build(ptrs, chain));
  RETURN_IF_ERROR(built.Write(store, path));
  return built;
}

bool MergedIndex::is_dir(uint32_t i) const { return nodes_[i].type == static_cast<uint8_t>(EntryType::kDirectory); }

std::optional<uint32_t> MergedIndex::Lookup(uint32_t dir, std::string_view name) const {
  const MergedNode& d = nodes_[dir];
  uint32_t lo = d.first_child, hi = d.first_child + d.child_count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = this->name(mid).compare(name);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else
      hi = mid;
  }
  return std::nullopt;
}

std::optional<uint32_t> MergedIndex::LookupPath(std::string_view path) const {
  uint32_t cur = kRoot;
  for (std::string_view part : SplitPath(path)) {
    auto next = Lookup(cur, part);
    if (!next) return std::nullopt;
    cur = *next;
  }
  return cur;
}

std::optional<uint32_t> MergedIndex::LowerDirOf(std::optional<uint32_t> parent, std::string_view name,
                                                const std::optional<std::string>& redirect) const {
  std::optional<uint32_t> found;
  if (redirect) found = LookupPath(*redirect);
  else if (parent)
    found = Lookup(*parent, name);
  if (found && is_dir(*found)) return found;
  return std::nullopt;
}

std::string MergedIndex::Path(uint32_t i) const {
  std::vector<uint32_t> chain;
  for (uint32_t cur = i; cur != kRoot; cur = nodes_[cur].parent) chain.push_back(cur);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!out.empty()) out += '/';
    out += name(*it);
  }
  return out;
}

std::string_view MergedIndex::LinkTarget(uint32_t i) const {
  uint32_t off = nodes_[i].link_off;
  if (off == kNone) return {};
  uint32_t len = ReadU32(extra_ + off);
  if (uint64_t{off} + 4 + len > extra_size_) return {};
  return {extra_ + off + 4, len};
}

std::vector<std::pair<std::string_view, std::string_view>> MergedIndex::Xattrs(uint32_t i) const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  uint64_t off = nodes_[i].xattr_off;
  if (off == kNone) return out;
  auto take = [&](std::string_view* s) {
    if (off + 4 > extra_size_) return false;
    uint32_t len = ReadU32(extra_ + off);
    if (off + 4 + len > extra_size_) return false;
    *s = std::string_view(extra_ + off + 4, len);
    off += 4 + len;
    return true;
  };
  uint32_t count = ReadU32(extra_ + off);
  off += 4;
  for (uint32_t k = 0; k < count; ++k) {
    std::string_view name, value;
    if (!take(&name) || !take(&value)) break;
    out.emplace_back(name, value);
  }
  return out;
}

}  // namespace layerfs
