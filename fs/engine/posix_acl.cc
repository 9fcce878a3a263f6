#include "fs/engine/posix_acl.h"

#include <sys/stat.h>

#include <cstdint>
#include <cstring>

namespace layerfs {

namespace {

// linux/posix_acl_xattr.h: little-endian on disk and on the wire.
constexpr uint32_t kVersion = 2;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;

struct Entry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

}  // namespace

// The kernel's posix_acl_create_masq: the owner, group (or mask) and other entries keep only
// what the requested mode allows, and the mode only what they allow.
bool InheritDefaultAcl(const std::string& default_acl, mode_t* mode, std::string* access_acl) {
  size_t header = sizeof(uint32_t);
  if (default_acl.size() < header || (default_acl.size() - header) % sizeof(Entry) != 0) return false;
  uint32_t version;
  std::memcpy(&version, default_acl.data(), header);
  if (version != kVersion) return false;
  std::string acl = default_acl;
  size_t count = (acl.size() - header) / sizeof(Entry);
  mode_t bits = *mode & 0777;
  bool equivalent = true;
  Entry* group_obj = nullptr;
  Entry* mask = nullptr;
  auto* entries = reinterpret_cast<Entry*>(acl.data() + header);
  for (size_t i = 0; i < count; ++i) {
    Entry& e = entries[i];
    switch (e.tag) {
      case kUserObj:
        e.perm &= (bits >> 6) | ~07;
        bits &= (e.perm << 6) | ~0700;
        break;
      case kUser:
      case kGroup:
        equivalent = false;
        break;
      case kGroupObj:
        group_obj = &e;
        break;
      case kOther:
        e.perm &= bits | ~07;
        bits &= e.perm | ~07;
        break;
      case kMask:
        mask = &e;
        equivalent = false;
        break;
      default:
        return false;
    }
  }
  Entry* group_bits = mask != nullptr ? mask : group_obj;
  if (group_bits == nullptr) return false;
  group_bits->perm &= (bits >> 3) | ~07;
  bits &= (group_bits->perm << 3) | ~070;
  *mode = (*mode & ~static_cast<mode_t>(0777)) | (bits & 0777);
  *access_acl = equivalent ? "" : acl;
  return true;
}

}  // namespace layerfs
