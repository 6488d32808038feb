// The time limits every PostgreSQL session gets (session_url), in both forms
// of a connection string, and the operator's own choices kept.
#include <gtest/gtest.h>

#include "pipeline/base64.hpp"
#include "pipeline/database.hpp"

namespace pipeline::db {
namespace {

constexpr SessionLimits kLimits{std::chrono::milliseconds(5000), std::chrono::milliseconds(3000)};

TEST(SessionUrl, KeyValueStringsGetEveryLimit) {
  const std::string url = session_url("host=db port=5432 user=app", kLimits);
  for (const char* part : {" connect_timeout='3'", " keepalives='1'", " keepalives_idle='5'",
                           " keepalives_interval='2'", " keepalives_count='3'",
                           " tcp_user_timeout='10000'", " options='-c statement_timeout=5000'"}) {
    EXPECT_NE(url.find(part), std::string::npos) << part << " in " << url;
  }
}

TEST(SessionUrl, UrisGetThemAsQueryParameters) {
  EXPECT_EQ(session_url("postgresql://app@db/events", kLimits),
            "postgresql://app@db/events?connect_timeout=3&keepalives=1&keepalives_idle=5&"
            "keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000&"
            "options=-c%20statement_timeout%3D5000");
  const std::string with_query = session_url("postgres://db/events?sslmode=disable", kLimits);
  EXPECT_EQ(with_query.rfind("postgres://db/events?sslmode=disable&connect_timeout=3", 0), 0U)
      << with_query;
}

TEST(SessionUrl, TheOperatorsChoicesStayButAConnectTimeoutOnlyShrinks) {
  const std::string url = session_url(
      "host=db keepalives_idle=30 options='-c work_mem=64MB' connect_timeout=60", kLimits);
  EXPECT_NE(url.find("keepalives_idle=30"), std::string::npos) << url;
  EXPECT_EQ(url.find("keepalives_idle='5'"), std::string::npos) << url;
  EXPECT_EQ(url.find("statement_timeout"), std::string::npos) << "options were the operator's";
  EXPECT_NE(url.find("connect_timeout=3"), std::string::npos) << url;
  EXPECT_EQ(url.find("connect_timeout=60"), std::string::npos) << url;
  EXPECT_NE(session_url("host=db connect_timeout=2", kLimits).find("connect_timeout=2"),
            std::string::npos)
      << "a shorter one stays";
}

TEST(SessionUrl, ConnectTimeoutsAreWholeSecondsOfAtLeastTwo) {
  constexpr SessionLimits short_limits{std::chrono::milliseconds(100),
                                       std::chrono::milliseconds(100)};
  EXPECT_NE(session_url("host=db", short_limits).find("connect_timeout='2'"), std::string::npos);
}

TEST(Base64, RoundTripsAndRefusesWhatIsNotBase64) {
  for (const std::string text : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\x00\xff\x10"}) {
    const auto decoded = base64_decode(base64_encode(text));
    ASSERT_TRUE(decoded) << text;
    EXPECT_EQ(*decoded, text);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_decode("Zm8").value_or("?"), "fo") << "padding may be left out";
  for (const char* bad : {"Zm8==", "Z", "Zm9v!", "Zm 9v", "Zm9=v", "Zn=="}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace pipeline::db
