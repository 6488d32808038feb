// Content-Encoding of request bodies: gzip and deflate inflated with a hard
// cap on the output, the framing of the request left to the HTTP layer.
#include <gtest/gtest.h>

#include <string>

#include "compression.hpp"
#include "http/content_coding.hpp"
#include "http/message.hpp"
#include "protocols/publish_request.hpp"

namespace ingest {
namespace {

using http::DecodedBody;

using testsupport::compress;

DecodedBody decode(const std::string& coding, const std::string& body, std::size_t cap = 1 << 20) {
  return http::decode_content(coding, body, cap, "INGEST_MAX_BODY_BYTES");
}

constexpr const char* kText = R"({"topic":"t","event_id":"1","timestamp":"2026-11-24T10:00:00Z"})";

TEST(ContentCoding, NoCodingOrIdentityLeavesTheBodyAlone) {
  for (const char* coding : {"", "identity", " Identity "}) {
    const DecodedBody body = decode(coding, kText);
    EXPECT_EQ(body.kind, DecodedBody::Kind::kIdentity) << coding;
    EXPECT_TRUE(body.text.empty()) << "nothing copied";
  }
}

TEST(ContentCoding, InflatesGzipAndDeflateInEachSpelling) {
  for (const char* coding : {"gzip", "GZIP", "x-gzip", " gzip ", "identity, gzip"}) {
    const DecodedBody body = decode(coding, compress(kText, 31));
    ASSERT_EQ(body.kind, DecodedBody::Kind::kDecoded) << coding << ": " << body.error;
    EXPECT_EQ(body.text, kText);
  }
  // deflate is the zlib format (RFC 9110), but raw deflate is taken too.
  for (const int bits : {15, -15}) {
    const DecodedBody body = decode("deflate", compress(kText, bits));
    ASSERT_EQ(body.kind, DecodedBody::Kind::kDecoded) << bits << ": " << body.error;
    EXPECT_EQ(body.text, kText);
  }
}

TEST(ContentCoding, GzipMembersOneAfterAnotherAreOneBody) {
  const DecodedBody body = decode("gzip", compress("{\"a\":", 31) + compress("1}", 31));
  ASSERT_EQ(body.kind, DecodedBody::Kind::kDecoded) << body.error;
  EXPECT_EQ(body.text, "{\"a\":1}");
}

// 8 MB of zeros compress to about 8 KB: inflating stops at the cap.
TEST(ContentCoding, ABombStopsAtTheCapAndNamesTheSetting) {
  const std::string bomb = compress(std::string(8'000'000, '\0'), 31);
  EXPECT_LT(bomb.size(), 16'000u);
  const DecodedBody body = decode("gzip", bomb, 1 << 20);
  EXPECT_EQ(body.kind, DecodedBody::Kind::kTooLarge);
  EXPECT_NE(body.error.find("INGEST_MAX_BODY_BYTES (1048576 bytes)"), std::string::npos)
      << body.error;
  EXPECT_TRUE(body.text.empty());
}

TEST(ContentCoding, TheCapIsExact) {
  const std::string text(5000, 'x');
  EXPECT_EQ(decode("gzip", compress(text, 31), 5000).kind, DecodedBody::Kind::kDecoded);
  EXPECT_EQ(decode("gzip", compress(text, 31), 4999).kind, DecodedBody::Kind::kTooLarge);
  EXPECT_EQ(decode("deflate", compress(text, 15), 4999).kind, DecodedBody::Kind::kTooLarge);
}

TEST(ContentCoding, CorruptTruncatedOrTrailedDataIsRefused) {
  const std::string gzip = compress(kText, 31);
  const std::pair<std::string, std::string> cases[] = {
      {"gzip", "not gzip at all"},         {"gzip", gzip.substr(0, gzip.size() / 2)},
      {"gzip", gzip + "trailing"},         {"gzip", ""},
      {"deflate", "\x01\x02\x03 nothing"}, {"gzip", compress(kText, 15)},  // zlib data is not gzip
  };
  for (const auto& [coding, body] : cases) {
    const DecodedBody result = decode(coding, body);
    EXPECT_EQ(result.kind, DecodedBody::Kind::kCorrupt) << coding << " " << body.size();
    EXPECT_NE(result.error.find("body is not valid"), std::string::npos) << result.error;
  }
}

TEST(ContentCoding, OtherCodingsAreUnsupported) {
  for (const char* coding : {"br", "compress", "zstd", "gzip, gzip", "gzip, br"}) {
    const DecodedBody body = decode(coding, compress(kText, 31));
    EXPECT_EQ(body.kind, DecodedBody::Kind::kUnsupported) << coding;
    EXPECT_NE(body.error.find("not supported"), std::string::npos) << body.error;
  }
}

http::Request publish_request(const std::string& body,
                              std::vector<std::pair<std::string, std::string>> headers) {
  http::Request request;
  request.method = "POST";
  request.path = "/publish";
  request.headers = std::move(headers);
  request.body = body;
  return request;
}

TEST(PublishRequest, APlainBodyIsNotCopied) {
  const http::Request request = publish_request(kText, {{"content-type", "application/json"}});
  std::string decoded;
  PublishInput input;
  ASSERT_FALSE(read_publish_request(request, 1 << 20, &decoded, &input));
  EXPECT_EQ(input.format, BodyFormat::kJson);
  EXPECT_EQ(input.body.data(), request.body.data());
}

TEST(PublishRequest, TheContentTypeAndTheCeHeadersChooseTheFormat) {
  const std::pair<std::vector<std::pair<std::string, std::string>>, BodyFormat> cases[] = {
      {{}, BodyFormat::kJson},
      {{{"content-type", "application/x-www-form-urlencoded"}}, BodyFormat::kJson},
      {{{"content-type", "application/vnd.example+json"}}, BodyFormat::kJson},
      {{{"content-type", "application/x-ndjson"}}, BodyFormat::kNdjson},
      {{{"content-type", "Application/CloudEvents+JSON; charset=utf-8"}}, BodyFormat::kCloudEvent},
      {{{"content-type", "application/cloudevents-batch+json"}}, BodyFormat::kCloudEventBatch},
      {{{"content-type", "application/json"}, {"ce-specversion", "1.0"}},
       BodyFormat::kCloudEventBinary},
      {{{"ce-id", "1"}}, BodyFormat::kCloudEventBinary},
  };
  for (const auto& [headers, format] : cases) {
    const http::Request request = publish_request(kText, headers);
    std::string decoded;
    PublishInput input;
    const auto refusal = read_publish_request(request, 1 << 20, &decoded, &input);
    ASSERT_FALSE(refusal) << refusal->body;
    EXPECT_EQ(input.format, format) << (headers.empty() ? "" : headers.front().second);
  }
}

TEST(PublishRequest, BinaryModeAttributesArePercentDecoded) {
  const http::Request request = publish_request(
      "{}", {{"ce-source", "/my%20source%3A%C3%A9"}, {"ce-type", "a.b"}, {"ce-id", "x+y"}});
  std::string decoded;
  PublishInput input;
  ASSERT_FALSE(read_publish_request(request, 1 << 20, &decoded, &input));
  ASSERT_EQ(input.attributes.size(), 3u);
  EXPECT_EQ(input.attributes[0], (std::pair<std::string, std::string>{"source", "/my source:é"}));
  EXPECT_EQ(input.attributes[2].second, "x+y") << "'+' is no space in a header";
}

TEST(PublishRequest, WhatCannotBeReadIsAnsweredWithTheRightStatus) {
  const std::string gzip = compress(std::string(4096, ' ') + kText, 31);
  const std::pair<std::vector<std::pair<std::string, std::string>>, int> cases[] = {
      {{{"content-type", "text/plain"}}, 415},
      {{{"content-type", "text/plain"}, {"ce-specversion", "1.0"}}, 415},
      {{{"content-encoding", "br"}}, 415},
      {{{"content-encoding", "deflate"}}, 400},  // gzip data is no deflate data
      {{{"content-encoding", "gzip"}, {"content-encoding", "gzip"}}, 415},  // one list: two codings
      {{{"content-encoding", "gzip"}, {"content-type", "application/x-ndjson"}}, 0},
  };
  for (const auto& [headers, status] : cases) {
    std::string decoded;
    PublishInput input;
    const auto refusal =
        read_publish_request(publish_request(gzip, headers), 1024, &decoded, &input);
    if (status == 0) {
      ASSERT_TRUE(refusal) << "4 KiB inflated past a 1 KiB cap";
      EXPECT_EQ(refusal->status, 413);
      continue;
    }
    ASSERT_TRUE(refusal) << status;
    EXPECT_EQ(refusal->status, status) << refusal->body;
    if (headers.back().first == "content-encoding" && status == 415) {
      EXPECT_EQ(refusal->headers.front(),
                (std::pair<std::string, std::string>{"Accept-Encoding", "gzip, deflate"}));
    }
  }
  std::string decoded;
  PublishInput input;
  const auto refusal =
      read_publish_request(publish_request(gzip, {{"content-type", "text/plain"}, {"ce-id", "1"}}),
                           1 << 20, &decoded, &input);
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->body.find("datacontenttype"), std::string::npos) << refusal->body;
}

}  // namespace
}  // namespace ingest
