#include "pipeline/timestamp.hpp"

#include <gtest/gtest.h>

namespace pipeline {
namespace {

std::string normalise(const std::string& text) {
  auto parsed = parse_rfc3339(text);
  return parsed ? format_rfc3339(*parsed) : "invalid";
}

TEST(Rfc3339, NormalisesToUtcWithMicroseconds) {
  EXPECT_EQ(normalise("2026-11-24T10:15:30Z"), "2026-11-24T10:15:30.000000Z");
  EXPECT_EQ(normalise("2026-11-24T10:15:30.5+01:00"), "2026-11-24T09:15:30.500000Z");
  EXPECT_EQ(normalise("2026-11-24t10:15:30.123456789-05:30"), "2026-11-24T15:45:30.123456Z");
  EXPECT_EQ(normalise("2026-01-01T00:30:00+01:00"), "2025-12-31T23:30:00.000000Z");
  EXPECT_EQ(normalise("1970-01-01T00:00:00Z"), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(normalise("1969-12-31T23:59:59.999999Z"), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339, AcceptsLeapDayOnlyInLeapYears) {
  EXPECT_EQ(normalise("2024-02-29T00:00:00Z"), "2024-02-29T00:00:00.000000Z");
  EXPECT_EQ(normalise("2000-02-29T00:00:00Z"), "2000-02-29T00:00:00.000000Z");
  EXPECT_EQ(normalise("2023-02-29T00:00:00Z"), "invalid");
  EXPECT_EQ(normalise("1900-02-29T00:00:00Z"), "invalid");
}

TEST(Rfc3339, RejectsImpossibleOrZonelessTimes) {
  for (const char* text :
       {"2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z",
        "2026-01-01T23:59:60Z", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-01-01",
        "0000-01-01T00:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+25:00",
        "2026-01-01T00:00:00Zjunk", "", "not a date", "1700000000"}) {
    std::string why;
    EXPECT_FALSE(parse_rfc3339(text, &why)) << text;
    EXPECT_FALSE(why.empty()) << text;
  }
}

// The processor re-reads the normalised form: an offset must not carry an
// accepted time into a year that form cannot hold.
TEST(Rfc3339, KeepsTheUtcFormWithinYearsOneToNineThousandNineHundredNinetyNine) {
  EXPECT_EQ(normalise("9999-12-31T22:30:00-01:00"), "9999-12-31T23:30:00.000000Z");
  EXPECT_EQ(normalise("0001-01-01T01:00:00+01:00"), "0001-01-01T00:00:00.000000Z");
  for (const char* text : {"9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00"}) {
    std::string why;
    EXPECT_FALSE(parse_rfc3339(text, &why)) << text;
    EXPECT_NE(why.find("0001 to 9999"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace pipeline
