// The raw response header lines the registry client reads itself (http_headers.h).
#include <gtest/gtest.h>

#include "layerstore/registry/http_headers.h"

namespace layerfs {
namespace {

TEST(HttpHeaders, HeaderLineLowercasesTheNameAndTrimsTheValue) {
  auto h = ParseHeaderLine("Docker-Content-Digest: \tsha256:abc \r\n");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->first, "docker-content-digest");
  EXPECT_EQ(h->second, "sha256:abc");
}

TEST(HttpHeaders, ValueKeepsLaterColons) {
  auto h = ParseHeaderLine("Location: http://127.0.0.1:5000/v2/x\r\n");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->second, "http://127.0.0.1:5000/v2/x");
}

TEST(HttpHeaders, LinesWithoutColonAreNoHeader) {
  EXPECT_FALSE(ParseHeaderLine("\r\n").has_value());
  EXPECT_FALSE(ParseHeaderLine("garbage").has_value());
  auto empty = ParseHeaderLine(":");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->first, "");
  EXPECT_EQ(empty->second, "");
}

TEST(HttpHeaders, ContentRangeStart) {
  EXPECT_EQ(ContentRangeStart("bytes 100-199/1000"), 100u);
  EXPECT_EQ(ContentRangeStart("bytes 0-0/*"), 0u);
  EXPECT_EQ(ContentRangeStart("items 5-6/7"), 0u);
  EXPECT_EQ(ContentRangeStart("bytes -5"), 0u);
  EXPECT_EQ(ContentRangeStart("bytes 99999999999999999999999-1/2"), 0u);  // overflows: refused
}

}  // namespace
}  // namespace layerfs
