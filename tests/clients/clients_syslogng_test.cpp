// Debian's syslog-ng 3.38 with its stock elasticsearch-http() destination
// (the SCL driver over http(): bulk `index` actions without `_id`), unpacked
// by scripts/client-deps.sh (it cannot be installed beside rsyslog). It reads
// a file and ships it to POST /_bulk through a proxy that loses ingest's
// first answers: syslog-ng sends those batches again, and every line is
// stored once, the resends counted as duplicates.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "clients_stack.hpp"
#include "fault_proxy.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

constexpr const char* kRoot = CLIENTS_DIR "/.syslog-ng";

std::string config(const std::string& input, std::uint16_t port, const std::string& index) {
  return std::string("@version: 3.38\n@include \"") + kRoot +
         "/usr/share/syslog-ng/include/scl/elasticsearch/elastic-http.conf\"\n"
         "options { stats-freq(0); time-reopen(1); };\n"
         "source s_file { file(\"" +
         input +
         "\" follow-freq(1) flags(no-parse)); };\n"
         "destination d_es { elasticsearch-http(url(\"http://127.0.0.1:" +
         std::to_string(port) + "/_bulk\") index(\"" + index +
         "\") type(\"\") workers(1) batch-lines(10) batch-timeout(200)); };\n"
         "log { source(s_file); destination(d_es); };\n";
}

TEST(ClientsSyslogNg, ElasticsearchHttpResendsOfLostAnswersAreDuplicates) {
  struct stat info {};
  ASSERT_EQ(::stat((std::string(kRoot) + "/usr/sbin/syslog-ng").c_str(), &info), 0)
      << "syslog-ng is missing: scripts/client-deps.sh unpacks it into " << kRoot;
  // syslog-ng's documents name the host HOST.
  Stack stack({"BULK_SOURCE_FIELDS=HOST"});
  ASSERT_TRUE(stack.up()) << "the stack did not come up; logs in " << stack.logs();
  FaultProxy proxy(stack.port());
  proxy.drop_answers(2);
  TempDir dir("syslog-ng");
  const std::string input = dir.path() + "/app.log";
  const std::string index = "syslog-ng-" + std::to_string(::getpid());
  constexpr int kLines = 50;
  {
    std::ofstream out(input);
    for (int i = 0; i < kLines; ++i) out << "job " << i << " finished in " << i * 7 << " ms\n";
  }
  std::ofstream(dir.path() + "/syslog-ng.conf") << config(input, proxy.port(), index);
  Process syslog_ng({std::string(kRoot) + "/usr/sbin/syslog-ng", "-F", "--no-caps", "-f",
                     dir.path() + "/syslog-ng.conf",
                     std::string("--module-path=") + kRoot + "/usr/lib/syslog-ng/3.38", "-R",
                     dir.path() + "/persist", "-p", dir.path() + "/pid", "-c", dir.path() + "/ctl"},
                    dir.path() + "/syslog-ng.log",
                    {std::string("LD_LIBRARY_PATH=") + kRoot + "/usr/lib/syslog-ng"});
  EXPECT_TRUE(wait_until(
      [&] { return stack.stored(index) == kLines && proxy.answers_dropped() == 2; }, 60s))
      << "stored " << stack.stored(index) << " of " << kLines << ", answers lost "
      << proxy.answers_dropped() << "; syslog-ng's log in " << dir.path();
  // The lost answers' batches came again: duplicates, not rows.
  EXPECT_TRUE(wait_until([&] { return stack.duplicates() >= 2; }, 30s))
      << "no resend arrived (duplicates " << stack.duplicates() << ")";
  syslog_ng.stop(SIGTERM);
  EXPECT_EQ(stack.stored(index), static_cast<std::size_t>(kLines));
  const HttpResponse page = HttpClient(stack.port(), 5000).get("/events?limit=1&topic=" + index);
  const json event = json::parse(page.body)["events"][0];
  EXPECT_NE(event["source"], "bulk") << event.dump();
  EXPECT_EQ(event["event_id"].get<std::string>().rfind("bulk-", 0), 0U) << event.dump();
  EXPECT_TRUE(event["payload"].contains("MESSAGE")) << event.dump();
}

}  // namespace
}  // namespace testsupport
