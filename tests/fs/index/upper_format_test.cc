// UpperFormat::ParseOverride: the owner and mode records containers/storage and fuse-overlayfs
// keep in xattrs ("UID:GID:MODE", mode in octal), which arrive with lower layers as anyone wrote
// them: anything but the exact form is no record.
#include "fs/index/upper_format.h"

#include <gtest/gtest.h>

#include <string>

namespace layerfs {
namespace {

TEST(ParseOverride, ReadsWhatContainersStorageAndFuseOverlayfsWrite) {
  auto o = UpperFormat::ParseOverride("1000:100:0100644");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->uid, 1000u);
  EXPECT_EQ(o->gid, 100u);
  EXPECT_EQ(o->mode, 0100644u);
  auto dir = UpperFormat::ParseOverride(std::string("0:0:0755\0", 9));  // with its C string's NUL
  ASSERT_TRUE(dir.has_value());
  EXPECT_EQ(dir->mode, 0755u);
}

TEST(ParseOverride, RefusesAnythingElse) {
  for (const char* bad : {"", "1000", "1000:100", "1000:100:", "a:0:0644", "0:0:0644x", "0:0:0648",
                          "-1:0:0644", "0:0:0644:1", "99999999999:0:0644", " 0:0:0644"})
    EXPECT_FALSE(UpperFormat::ParseOverride(bad).has_value()) << '"' << bad << '"';
}

}  // namespace
}  // namespace layerfs
