#include "tools/table.h"

#include <gtest/gtest.h>

namespace layerfs::cli {
namespace {

TEST(HumanSize, MatchesDockerUnits) {
  EXPECT_EQ(HumanSize(0), "0B");
  EXPECT_EQ(HumanSize(999), "999B");
  EXPECT_EQ(HumanSize(1000), "1kB");
  EXPECT_EQ(HumanSize(1234), "1.234kB");
  EXPECT_EQ(HumanSize(1234, 3), "1.23kB");
  EXPECT_EQ(HumanSize(75500000, 3), "75.5MB");
  EXPECT_EQ(HumanSize(12345678901), "12.35GB");
}

TEST(HumanDuration, MatchesDockerWording) {
  EXPECT_EQ(HumanDuration(0), "Less than a second");
  EXPECT_EQ(HumanDuration(1), "1 second");
  EXPECT_EQ(HumanDuration(45), "45 seconds");
  EXPECT_EQ(HumanDuration(90), "About a minute");
  EXPECT_EQ(HumanDuration(600), "10 minutes");
  EXPECT_EQ(HumanDuration(3600), "About an hour");
  EXPECT_EQ(HumanDuration(int64_t{2} * 3600), "2 hours");
  EXPECT_EQ(HumanDuration(int64_t{3} * 86400), "3 days");
  EXPECT_EQ(HumanDuration(int64_t{21} * 86400), "3 weeks");
  EXPECT_EQ(HumanDuration(int64_t{90} * 86400), "3 months");
  EXPECT_EQ(HumanDuration(int64_t{3} * 365 * 86400), "3 years");
}

TEST(Time, ParsesRfc3339AndPrintsLikeGo) {
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:01:00Z"), 60);
  EXPECT_EQ(*ParseRfc3339("1970-01-01T01:00:00.123456789+01:00"), 0);
  EXPECT_FALSE(ParseRfc3339("yesterday").has_value());
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00-02:30"), 9000);
  // Offsets are exactly [+-]HH:MM, as RFC 3339 and Go's time.Parse have them.
  EXPECT_FALSE(ParseRfc3339("1970-01-01T00:00:00+1:00").has_value());
  EXPECT_FALSE(ParseRfc3339("1970-01-01T00:00:00+01:00junk").has_value());
  EXPECT_FALSE(ParseRfc3339("1970-01-01T00:00:00+99999999999:00").has_value());
  EXPECT_EQ(CreatedSince("1970-01-01T00:00:00Z", 7200), "N/A");  // zero time
  EXPECT_EQ(CreatedSince("1970-01-01T00:01:00Z", 7260), "2 hours ago");
  EXPECT_EQ(GoTimeString("2024-01-02T03:04:05Z"), "2024-01-02 03:04:05 +0000 UTC");
}

TEST(Ellipsis, CutsToWidthWithAnEllipsis) {
  EXPECT_EQ(Ellipsis("short", 45), "short");
  std::string long_cmd(60, 'x');
  std::string cut = Ellipsis(long_cmd, 45);
  EXPECT_EQ(DisplayWidth(cut), 45u);
  EXPECT_EQ(cut, std::string(44, 'x') + "…");
}

TEST(Table, PadsColumnsLikeTabwriter) {
  Table t({"REPOSITORY", "TAG", "SIZE"});
  t.AddRow({"redis", "latest", "75.5MB"});
  t.AddRow({"a", "…", "0B"});
  EXPECT_EQ(t.Render(),
            "REPOSITORY   TAG       SIZE\n"
            "redis        latest    75.5MB\n"
            "a            …         0B\n");
}

}  // namespace
}  // namespace layerfs::cli
