// Bodies as log shippers send them: compressed (gzip, deflate) and NDJSON,
// through the whole pipeline; and a gzip bomb that must cost nothing.
#include <algorithm>
#include <fstream>
#include <string>

#include "compression.hpp"
#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

class Formats : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    start_all();
  }
  static std::string line(const std::string& id, const std::string& topic = "logs.app") {
    return event(topic, id, {{"line", id}}).dump();
  }
};

// gzip of `size` zero bytes, made in small steps (the zeros never held at
// once, so that they do not raise this process's peak memory themselves).
std::string gzip_of_zeros(std::size_t size) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
  const std::string zeros(1 << 16, '\0');
  std::string out;
  char chunk[1 << 14];
  for (std::size_t fed = 0; fed < size || zs.avail_in > 0;) {
    if (zs.avail_in == 0) {
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
      zs.avail_in = static_cast<uInt>(std::min(zeros.size(), size - fed));
      fed += zs.avail_in;
    }
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    deflate(&zs, Z_NO_FLUSH);
    out.append(chunk, sizeof chunk - zs.avail_out);
  }
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = deflate(&zs, Z_FINISH);
    out.append(chunk, sizeof chunk - zs.avail_out);
  }
  deflateEnd(&zs);
  return out;
}

// The peak resident memory of this process (kB) since the last
// reset_peak_rss(), from /proc.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }
long peak_rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_F(Formats, GzipAndDeflateBodiesAreInflated) {
  const std::string gzip = compress(json::array({event("zip", "g1"), event("zip", "g2")}).dump());
  HttpResponse response = post(gzip, "application/json", {{"Content-Encoding", "gzip"}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(json::parse(response.body)["accepted"], 2);
  for (const int bits : {15, -15}) {  // deflate: zlib format, or raw as some clients send
    const std::string id = "d" + std::to_string(bits);
    response = post(compress(event("zip", id).dump(), bits), "application/json",
                    {{"Content-Encoding", "deflate"}});
    EXPECT_EQ(response.status, 200) << response.body;
  }
  response =
      post(event("zip", "identity").dump(), "application/json", {{"Content-Encoding", "identity"}});
  EXPECT_EQ(response.status, 200) << response.body;
  wait_for_idle(5);
  EXPECT_EQ(count_rows("topic = 'zip'"), 5);
}

TEST_F(Formats, UnknownOrCorruptEncodingsGetJsonErrors) {
  HttpResponse response =
      post(event("zip", "br").dump(), "application/json", {{"Content-Encoding", "br"}});
  EXPECT_EQ(response.status, 415);
  EXPECT_EQ(response.header("accept-encoding"), "gzip, deflate");
  EXPECT_NE(json::parse(response.body)["error"].get<std::string>().find("br"), std::string::npos);
  const std::string gzip = compress(event("zip", "cut").dump());
  response =
      post(gzip.substr(0, gzip.size() - 6), "application/json", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(response.status, 400);
  EXPECT_NE(json::parse(response.body)["error"].get<std::string>().find("gzip"), std::string::npos);
  EXPECT_EQ(post(event("zip", "ok").dump(), "application/json").status, 200);
}

// 64 MB of zeros compress to about 64 KB, well under INGEST_MAX_BODY_BYTES
// (1 MiB): ingest stops inflating at 1 MiB and answers 413. Without the cap
// the request would hold 64 MB; the peak memory of this process (ingest runs
// in it) shows it did not. (The bound leaves room for the sanitizers' shadow
// memory: a capped inflate costs about 2 MB, an uncapped one 64 MB and more.)
TEST_F(Formats, AGzipBombIs413AndCostsNothing) {
  const std::string bomb = gzip_of_zeros(64u << 20);
  ASSERT_LT(bomb.size(), 128u << 10);
  const auto send_bomb = [&] {
    const HttpResponse response =
        post(bomb, "application/x-ndjson", {{"Content-Encoding", "gzip"}});
    EXPECT_EQ(response.status, 413) << response.body;
    EXPECT_NE(
        response.body.find("decompressed body larger than INGEST_MAX_BODY_BYTES (1048576 bytes)"),
        std::string::npos)
        << response.body;
  };
  reset_peak_rss();
  const long peak_before = peak_rss_kb();
  send_bomb();
  EXPECT_LT(peak_rss_kb() - peak_before, 32 * 1024) << "kB more at the peak";
  send_bomb();
  send_bomb();
  EXPECT_EQ(http().get("/health").status, 200);
  const HttpResponse next = post(event("after", "bomb").dump(), "application/json");
  EXPECT_EQ(next.status, 200) << next.body;
  wait_for_idle(1);
}

TEST_F(Formats, NdjsonLinesAreJudgedAloneAndStored) {
  const std::string body = line("n1") + "\n" + line("n2") + "\r\n\n{broken\n" +
                           R"({"topic":"logs.app","event_id":"n4"})" + "\n" + line("n5");
  const HttpResponse response = post(body, "application/x-ndjson");
  ASSERT_EQ(response.status, 200) << response.body;
  const json report = json::parse(response.body);
  EXPECT_EQ(report["received"], 5);
  EXPECT_EQ(report["accepted"], 3);
  EXPECT_EQ(report["rejected"], 2);
  EXPECT_EQ(report["results"][2]["status"], "rejected");
  EXPECT_EQ(report["results"][2]["error"].get<std::string>().rfind("line 4: malformed JSON", 0),
            0u);
  EXPECT_EQ(report["results"][3]["error"], "line 5: timestamp: is required");
  EXPECT_EQ(report["results"][3]["field"], "timestamp");
  EXPECT_EQ(report["results"][4]["event_id"], "n5");
  // Compressed, as shippers send it; a repeat is a duplicate as anywhere.
  std::string shipped;
  for (int i = 0; i < 200; ++i) shipped += line("s" + std::to_string(i), "logs.shipped") + "\n";
  const HttpResponse gzipped =
      post(compress(shipped), "application/x-ndjson", {{"Content-Encoding", "gzip"}});
  ASSERT_EQ(gzipped.status, 200) << gzipped.body;
  EXPECT_EQ(json::parse(gzipped.body)["accepted"], 200);
  const HttpResponse again = post(line("n1") + "\n", "application/x-ndjson");
  EXPECT_EQ(json::parse(again.body)["duplicates"], 1);
  wait_for_idle(203);
  EXPECT_EQ(count_rows("topic = 'logs.shipped'"), 200);
  EXPECT_EQ(count_rows("topic = 'logs.app'"), 3);
}

TEST_F(Formats, NdjsonLimitsAreTheRequestLimits) {
  std::string body;
  for (int i = 0; i < 1001; ++i) body += line("x" + std::to_string(i)) + "\n";
  HttpResponse response = post(body, "application/x-ndjson");
  EXPECT_EQ(response.status, 413);
  EXPECT_NE(response.body.find("max_events_per_request"), std::string::npos) << response.body;
  response = post("\n\n", "application/x-ndjson");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(json::parse(response.body)["error"], "no events in the request");
  response = post("{\"a\":1}\nnot json\n", "application/x-ndjson");
  EXPECT_EQ(response.status, 400) << "every line rejected";
  EXPECT_EQ(json::parse(response.body)["rejected"], 2);
  EXPECT_EQ(post("x", "text/plain").status, 415);
}

}  // namespace
}  // namespace testsupport
