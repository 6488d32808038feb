// Pieces of the ingest API that need no server: access control, cursors, the
// route table against the OpenAPI document, settings.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ingest/access_control.hpp"
#include "ingest/config.hpp"
#include "ingest/event_store.hpp"
#include "ingest/server.hpp"

namespace ingest {
namespace {

TEST(ConstantTimeEquals, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equals("secret", "secret"));
  EXPECT_FALSE(constant_time_equals("secret", "secreT"));
  EXPECT_FALSE(constant_time_equals("secret", "secret2"));
  EXPECT_FALSE(constant_time_equals("secret", ""));
  EXPECT_TRUE(constant_time_equals("", ""));
}

TEST(TokenAuthenticator, AcceptsOnlyConfiguredBearerTokens) {
  const TokenAuthenticator auth({"alpha", "beta"});
  EXPECT_TRUE(auth.enabled());
  EXPECT_EQ(auth.authenticate("Bearer alpha"), "alpha");
  EXPECT_EQ(auth.authenticate("Bearer beta"), "beta");
  EXPECT_FALSE(auth.authenticate("Bearer gamma"));
  EXPECT_FALSE(auth.authenticate("Basic alpha"));
  EXPECT_FALSE(auth.authenticate("Bearer "));
  EXPECT_FALSE(auth.authenticate(""));
  EXPECT_FALSE(TokenAuthenticator({}).enabled());
}

TEST(IngestConfig, SplitsTokensAndTrimsBlanks) {
  IngestConfig config;
  config.api_tokens = " one ,two,, three ";
  EXPECT_EQ(config.token_list(), (std::vector<std::string>{"one", "two", "three"}));
  config.api_tokens = "";
  EXPECT_TRUE(config.token_list().empty());
}

TEST(RateLimiter, AllowsTheBurstThenTheRate) {
  RateLimiter limiter(2.0, 3);  // 2 per second, bursts of 3
  const auto t0 = RateLimiter::Clock::now();
  std::chrono::milliseconds retry{0};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.allow("a", t0, &retry)) << i;
  EXPECT_FALSE(limiter.allow("a", t0, &retry));
  EXPECT_EQ(retry, std::chrono::milliseconds(500));
  EXPECT_TRUE(limiter.allow("b", t0, &retry)) << "keys have their own buckets";
  EXPECT_TRUE(limiter.allow("a", t0 + std::chrono::milliseconds(500), &retry));
  EXPECT_FALSE(limiter.allow("a", t0 + std::chrono::milliseconds(600), &retry));
  EXPECT_TRUE(RateLimiter(0, 1).allow("x", t0, &retry)) << "rate 0 means off";
}

// A slow rate refills over longer than the sweep interval: sweeping the
// bucket of a limited client must not hand it a fresh burst.
TEST(RateLimiter, TheSweepKeepsBucketsThatAreNotFullYet) {
  RateLimiter limiter(1.0 / 600, 2);  // one request per 10 minutes, bursts of 2
  const auto t0 = RateLimiter::Clock::now();
  std::chrono::milliseconds retry{0};
  EXPECT_TRUE(limiter.allow("slow", t0, &retry));
  EXPECT_TRUE(limiter.allow("slow", t0, &retry));
  const auto later = t0 + std::chrono::minutes(2);  // past the sweep, not refilled
  EXPECT_TRUE(limiter.allow("other", later, &retry)) << "runs the sweep";
  EXPECT_FALSE(limiter.allow("slow", later, &retry));
  EXPECT_GT(retry, std::chrono::minutes(7));
}

TEST(EventCursor, RoundTripsAndRejectsForeignTokens) {
  const EventCursor cursor{1732442400123456, 42, 7, 99};
  const std::string token = cursor.encode(false);
  const auto back = EventCursor::decode(token, false);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ts_micros, cursor.ts_micros);
  EXPECT_EQ(back->stream_seq, 42);
  EXPECT_EQ(back->id, 7);
  EXPECT_EQ(back->snapshot_id, 99);
  EXPECT_FALSE(EventCursor::decode(token, true)) << "made for ascending order";
  EXPECT_FALSE(EventCursor::decode("not a cursor!", false));
  EXPECT_FALSE(EventCursor::decode("", false));
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos)
      << "URL-safe";
}

TEST(OpenApi, DocumentsExactlyTheServedRoutes) {
  const auto doc = nlohmann::json::parse(openapi_document());
  std::set<std::string> documented;
  for (const auto& [path, operations] : doc.at("paths").items()) {
    for (const auto& [method, operation] : operations.items()) {
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.insert(upper.append(" ").append(path));
      EXPECT_TRUE(operation.contains("responses")) << path;
    }
  }
  std::set<std::string> served;
  for (const auto& route : IngestServer::routes()) {
    served.insert(route.method + " " + route.path);
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto& operation = doc["paths"][route.path][method];
    // Public routes say so with an empty security list.
    EXPECT_EQ(operation.contains("security") && operation["security"].empty(), route.public_route)
        << route.path;
  }
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace ingest
