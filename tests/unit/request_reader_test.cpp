// The strict framing of RequestReader: the whole message (head, chunk
// framing, trailers), whatever the segmentation of its bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/request_reader.hpp"

namespace ingest::http {
namespace {

using Kind = RequestReader::Result::Kind;

// Feeds `bytes` in segments of `step` bytes (0: at once) and collects what
// the reader makes of them.
struct Outcome {
  std::vector<Request> requests;
  int error = 0;
  std::string message;
};

Outcome read_all(const std::string& bytes, std::size_t step = 0, ReaderLimits limits = {}) {
  RequestReader reader(limits);
  Outcome outcome;
  const std::size_t n = step == 0 ? bytes.size() : step;
  for (std::size_t i = 0; i < bytes.size(); i += n) {
    reader.feed(bytes.data() + i, std::min(n, bytes.size() - i));
    while (true) {
      auto result = reader.next();
      if (result.kind == Kind::kNeedMore) break;
      if (result.kind == Kind::kError) {
        outcome.error = result.status;
        outcome.message = result.message;
        return outcome;
      }
      outcome.requests.push_back(std::move(result.request));
    }
  }
  return outcome;
}

// Every case at once and split byte by byte: the same answer.
void expect_error(const std::string& bytes, int status, const std::string& why) {
  for (const std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
    const Outcome outcome = read_all(bytes, step);
    EXPECT_EQ(outcome.error, status) << why << " (step " << step << "): " << outcome.message;
  }
}

constexpr const char* kPost = "POST /publish HTTP/1.1\r\nHost: x\r\n";

TEST(RequestReader, FramesContentLengthAndChunkedBodiesInAnySegmentation) {
  const std::string body = R"({"a":1})";
  const std::string bytes = std::string(kPost) + "Content-Length: 7\r\n\r\n" + body + kPost +
                            "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n"
                            "0\r\nTrailer-A: 1\r\n\r\n" +
                            "GET /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
    const Outcome outcome = read_all(bytes, step);
    ASSERT_EQ(outcome.error, 0) << outcome.message;
    ASSERT_EQ(outcome.requests.size(), 3u) << step;
    EXPECT_EQ(outcome.requests[0].body, body);
    EXPECT_EQ(outcome.requests[1].body, body);
    EXPECT_EQ(outcome.requests[2].path, "/health");
    EXPECT_EQ(outcome.requests[2].query, "x=1");
    EXPECT_TRUE(outcome.requests[2].keep_alive);
  }
}

// Issue 18, item 7: what a non-strict parser took, and a proxy could read
// otherwise.
TEST(RequestReader, LenientChunkFramingIsRefused) {
  const std::string te = std::string(kPost) + "Transfer-Encoding: chunked\r\n\r\n";
  expect_error(te + "2;ext\nx\r\n{}\r\n0\r\n\r\n", 400, "bare LF in a chunk extension");
  expect_error(te + "2\n{}\r\n0\r\n\r\n", 400, "bare LF after the chunk size");
  expect_error(te + "2\r\n{}XX0\r\n\r\n", 400, "chunk data not followed by CRLF");
  expect_error(te + "2\r\n{}\n0\r\n\r\n", 400, "chunk data followed by a bare LF");
  expect_error(te + "0\r\n\n", 400, "a bare LF ending the trailers");
  expect_error(te + "0\r\nX: 1\n\r\n", 400, "a trailer ended by a bare LF");
  expect_error(te + "0\r\nbad trailer\r\n\r\n", 400, "a trailer without a colon");
  expect_error(te + "2 ;\"x\r\n{}\r\n0\r\n\r\n", 400, "a broken chunk extension");
  expect_error(te + "-2\r\n{}\r\n0\r\n\r\n", 400, "a negative chunk size");
  expect_error(te + "0x2\r\n{}\r\n0\r\n\r\n", 400, "0x in a chunk size");
  expect_error(te + "2\r\r\n{}\r\n0\r\n\r\n", 400, "a bare CR in the size line");
  expect_error(std::string(kPost) + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
               "a coding other than chunked");
  expect_error(std::string(kPost) + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 501,
               "chunked not last, after a coding not implemented");
  expect_error(std::string(kPost) + "Transfer-Encoding: ,\r\n\r\n0\r\n\r\n", 400,
               "an empty list of codings");
  expect_error(std::string(kPost) + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400,
               "chunked twice");
  expect_error("POST /publish HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
               400, "Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1: faulty framing)");
}

TEST(RequestReader, ChunkExtensionsAndTrailersWithinTheRulesAreTaken) {
  const std::string te = std::string(kPost) + "Transfer-Encoding: Chunked\r\n\r\n";
  const Outcome outcome =
      read_all(te + "2 ; a=b ; c=\"q \\\" d\" ;e\r\n{}\r\n0;last\r\nX-T: v\r\nY: w\r\n\r\n", 1);
  ASSERT_EQ(outcome.error, 0) << outcome.message;
  ASSERT_EQ(outcome.requests.size(), 1u);
  EXPECT_EQ(outcome.requests[0].body, "{}");
}

TEST(RequestReader, TheHeadIsCheckedLineByLine) {
  expect_error("GET /health HTTP/1.1\nHost: x\n\n", 400, "bare LF");
  expect_error("GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold");
  expect_error("GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400, "space before the colon");
  expect_error("GET /health HTTP/1.1\r\nHost: x\rY\r\n\r\n", 400, "bare CR in a value");
  expect_error("GET /health HTTP/1.1\r\n\r\n", 400, "no Host");
  expect_error("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Hosts");
  expect_error("GET  /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "two spaces");
  expect_error("GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0");
  expect_error("GET /health HTTP/1.x\r\nHost: x\r\n\r\n", 400, "a broken version");
  expect_error("BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 501, "an unknown method");
  expect_error("GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "absolute-form");
  expect_error(std::string(kPost) + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400,
               "two Content-Lengths");
  expect_error(std::string(kPost) + "Content-Length: +1\r\n\r\nx", 400, "a signed length");
  expect_error(std::string(kPost) + "Content-Length: 1, 1\r\n\r\nx", 400, "a list as length");
  expect_error(std::string(kPost) + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
               "both framings");
  expect_error(std::string(kPost) + "Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417,
               "an unknown expectation");
}

TEST(RequestReader, LimitsAreNamedAndCheap) {
  ReaderLimits limits;
  limits.max_body_bytes = 16;
  EXPECT_EQ(read_all(std::string(kPost) + "Content-Length: 17\r\n\r\n", 0, limits).error, 413);
  const Outcome chunked = read_all(
      std::string(kPost) + "Transfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n", 0, limits);
  EXPECT_EQ(chunked.error, 413);
  EXPECT_NE(chunked.message.find("INGEST_MAX_BODY_BYTES"), std::string::npos);
  EXPECT_EQ(read_all("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n", 0).error, 414);
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 4000; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
  EXPECT_EQ(read_all(many, 100).error, 431);
  std::string trailers = std::string(kPost) + "Transfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 2000; ++i) trailers += "T-" + std::to_string(i) + ": y\r\n";
  EXPECT_EQ(read_all(trailers, 100).error, 431);
}

// Issue 18, item 5: a pipelined request whose body is still arriving after
// the request before it was taken is read to its end, not refused.
TEST(RequestReader, ABodyArrivingAfterAnEarlierRequestWasTakenIsRead) {
  RequestReader reader({});
  const std::string first = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = std::string(kPost) + "Content-Length: 10\r\n\r\n01234";
  reader.feed((first + second).data(), first.size() + second.size());
  auto one = reader.next();
  ASSERT_EQ(one.kind, Kind::kRequest);
  EXPECT_EQ(reader.next().kind, Kind::kNeedMore);
  EXPECT_TRUE(reader.in_request());
  EXPECT_EQ(reader.next().kind, Kind::kNeedMore) << "asking again changes nothing";
  reader.feed("56789", 5);
  auto two = reader.next();
  ASSERT_EQ(two.kind, Kind::kRequest) << two.message;
  EXPECT_EQ(two.request.body, "0123456789");
}

TEST(RequestReader, KeepAliveFollowsTheVersionAndTheConnectionHeader) {
  const auto keep = [](const std::string& head) {
    const Outcome outcome = read_all(head + "\r\n");
    EXPECT_EQ(outcome.error, 0) << head << outcome.message;
    return !outcome.requests.empty() && outcome.requests[0].keep_alive;
  };
  EXPECT_TRUE(keep("GET / HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.0\r\n"));
  EXPECT_TRUE(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n"));
}

TEST(RequestReader, ContinueIsWantedOnlyUntilTheBodyStarts) {
  RequestReader reader({});
  const std::string head = std::string(kPost) + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  reader.feed(head.data(), head.size());
  EXPECT_EQ(reader.next().kind, Kind::kNeedMore);
  EXPECT_TRUE(reader.continue_wanted());
  reader.feed("{", 1);
  EXPECT_EQ(reader.next().kind, Kind::kNeedMore);
  EXPECT_FALSE(reader.continue_wanted()) << "the client did not wait for it";
}

TEST(RequestReader, MemoryIsGivenBackAsRequestsPass) {
  RequestReader reader({});
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  reader.feed(many.data(), many.size());
  int taken = 0;
  while (reader.next().kind == Kind::kRequest) ++taken;
  EXPECT_EQ(taken, 5000);
  EXPECT_EQ(reader.buffered(), 0u);
  reader.release_memory();
  EXPECT_EQ(reader.unread(), 0u);
}

}  // namespace
}  // namespace ingest::http
