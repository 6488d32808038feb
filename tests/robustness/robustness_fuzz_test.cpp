// Robustness, fuzzing: mutated requests, split at random points.
// See robustness_harness.hpp.
#include "robustness_harness.hpp"

namespace testsupport {
namespace {

// A bounded fuzz run (fixed seed): requests built from valid ones with
// bytes flipped, dropped, repeated and inserted, headers duplicated or
// mangled, bodies cut, all split at random points. Whatever comes back must
// be HTTP with a JSON body and never a 500; nothing may hang past the
// timeouts; afterwards ingest idles and serves.
TEST_F(Robustness, FuzzedRequestsGetJsonAnswersAndNothingHangs) {
  // Short timeouts: an unfinished request gets its 408 quickly.
  start_ingest(
      {"INGEST_HEADER_TIMEOUT=300ms", "INGEST_BODY_TIMEOUT=300ms", "INGEST_IDLE_TIMEOUT=300ms"});
  std::mt19937 random(20261130);
  const std::vector<std::string> seeds = {
      post(event_json("fuzz")),
      post("[" + event_json("a") + "," + event_json("b", R"({"n":[1,2,{"x":null}]})") + "]"),
      post(R"({"events":[)" + event_json("c") + "]}"),
      "GET /events?topic=robust&limit=5&order=desc HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
      // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one request, two lines
      "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n",
  };
  const std::string specials[] = {"\r",
                                  "\n",
                                  "\r\n",
                                  " ",
                                  ":",
                                  std::string(1, '\0'),
                                  "\xff",
                                  "\xc3",
                                  "%",
                                  "\"",
                                  "{",
                                  "[",
                                  ",",
                                  "0",
                                  "-",
                                  "chunked",
                                  "Content-Length: 9\r\n",
                                  "Transfer-Encoding: chunked\r\n",
                                  "\\u0000",
                                  "\t"};
  constexpr int kCases = 3000;
  std::atomic<int> next{0};
  std::atomic<int> bad{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::map<int, int> statuses;  // what the fuzz reached
  std::vector<std::string> cases(kCases);
  std::vector<std::vector<std::size_t>> splits(kCases);
  for (int i = 0; i < kCases; ++i) {
    std::string r = seeds[random() % seeds.size()];
    const int mutations = 1 + static_cast<int>(random() % 4);
    for (int m = 0; m < mutations && !r.empty(); ++m) {
      const std::size_t at = random() % r.size();
      switch (random() % 6) {
        case 0:
          r[at] = static_cast<char>(random() % 256);
          break;
        case 1:
          r.erase(at, 1 + random() % 8);
          break;
        case 2:
          r.insert(at, specials[random() % std::size(specials)]);
          break;
        case 3:
          r.insert(at, r.substr(at, 1 + random() % 16));
          break;
        case 4:
          r.resize(at);
          break;
        default:
          r.insert(at, std::string(1 + random() % 3, static_cast<char>(random() % 256)));
      }
    }
    cases[static_cast<std::size_t>(i)] = r;
    for (int s = 0; s < 3; ++s)
      splits[static_cast<std::size_t>(i)].push_back(random() % (r.size() + 1));
    std::sort(splits[static_cast<std::size_t>(i)].begin(),
              splits[static_cast<std::size_t>(i)].end());
  }
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  workers.reserve(32);
  for (int w = 0; w < 32; ++w) {
    workers.emplace_back([&] {
      for (int i; (i = next++) < kCases;) {
        const std::string& request = cases[static_cast<std::size_t>(i)];
        RawConnection c(port_);
        if (!c.connected()) {
          ++bad;
          continue;
        }
        std::size_t from = 0;
        for (const std::size_t to : splits[static_cast<std::size_t>(i)]) {
          c.send(request.substr(from, to - from));
          from = to;
        }
        c.send(request.substr(from));
        // Whatever comes back: complete responses, each JSON, none a 500;
        // then the server closes (after an error, a 408 for an unfinished
        // request, or the idle timeout).
        std::string problem;
        while (true) {
          const auto response = c.read(4s);
          if (!response) break;
          {
            std::lock_guard<std::mutex> lock(mutex);
            ++statuses[response->status];
          }
          if (response->status >= 500 && response->status != 501 && response->status != 503 &&
              response->status != 505) {
            problem = "status " + std::to_string(response->status);
          } else if (!is_json(response->body) && response->status != 100) {
            problem = "not JSON: " + response->body.substr(0, 80);
          }
          if (!problem.empty()) break;
        }
        if (problem.empty() && !c.closed_by_server(6s)) problem = "hangs";
        if (problem.empty() && !c.buffer().empty()) {
          problem = "unframed bytes: " + c.buffer().substr(0, 40);
        }
        if (!problem.empty()) {
          ++bad;
          std::lock_guard<std::mutex> lock(mutex);
          if (failures.size() < 10)
            failures.push_back(problem + " for " +
                               json(request).dump(-1, ' ', true, json::error_handler_t::replace));
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string reached;
  for (const auto& [status, count] : statuses) {
    reached += " " + std::to_string(status) + ":" + std::to_string(count);
  }
  std::printf("[robustness] fuzz: %d cases in %.1f s, %d failed; answers by status%s\n", kCases,
              seconds, bad.load(), reached.c_str());
  for (const auto& f : failures) std::printf("  %s\n", f.c_str());
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LT(cpu_while_idle(), 0.2) << "ingest keeps burning CPU after the fuzz run";
  expect_healthy();
}

}  // namespace
}  // namespace testsupport
