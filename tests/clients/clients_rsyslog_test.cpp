// Debian's rsyslog with omelasticsearch (package rsyslog-elasticsearch),
// unchanged: it reads a file with imfile and ships it in bulk mode with
// writeoperation="create" to POST /_bulk. Every line is stored once; when
// rsyslog reads the whole file again (its state forgotten: what a restart
// with a lost state file does), the resend stores nothing twice.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "clients_stack.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

constexpr const char* kRsyslogd = "/usr/sbin/rsyslogd";
constexpr const char* kModule = "/usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so";

std::string config(const std::string& dir, const std::string& input, std::uint16_t port,
                   const std::string& index) {
  return R"(global(workDirectory=")" + dir + R"(/work")
module(load="imfile")
module(load="omelasticsearch")
template(name="esdoc" type="list") {
  constant(value="{\"message\":\"")
  property(name="msg" format="json")
  constant(value="\",\"host\":\"rsyslog-host\",\"offset\":")
  property(name="$!metadata!fileoffset")
  constant(value="}")
}
template(name="esid" type="string" string="line-%$!metadata!fileoffset%")
input(type="imfile" File=")" +
         input + R"(" Tag="app:" addMetadata="on"
      freshStartTail="off" ruleset="toes")
ruleset(name="toes") {
  action(type="omelasticsearch" server="127.0.0.1" serverport=")" +
         std::to_string(port) + R"("
         esversion.major="8" searchIndex=")" +
         index + R"(" template="esdoc"
         bulkmode="on" maxbytes="1m" writeoperation="create" bulkid="esid" dynbulkid="on"
         errorfile=")" +
         dir + R"(/es-errors.json"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
)";
}

TEST(ClientsRsyslog, OmelasticsearchBulkCreateStoresEveryLineOnceWhateverItRereads) {
  struct stat info {};
  ASSERT_EQ(::stat(kRsyslogd, &info), 0) << "rsyslog is missing (scripts/packages-test.txt)";
  ASSERT_EQ(::stat(kModule, &info), 0)
      << "omelasticsearch is missing: rsyslog-elasticsearch (scripts/packages-test.txt)";
  Stack stack;
  ASSERT_TRUE(stack.up()) << "the stack did not come up; logs in " << stack.logs();
  TempDir dir("rsyslog");
  ::mkdir((dir.path() + "/work").c_str(), 0755);
  const std::string input = dir.path() + "/app.log";
  const std::string index = "rsyslog-" + std::to_string(::getpid());
  constexpr int kLines = 50;
  {
    std::ofstream out(input);
    for (int i = 0; i < kLines; ++i) out << "request " << i << " served in " << i * 3 << " ms\n";
  }
  std::ofstream(dir.path() + "/rsyslog.conf") << config(dir.path(), input, stack.port(), index);
  const auto run_rsyslog = [&] {
    return Process(
        {kRsyslogd, "-n", "-f", dir.path() + "/rsyslog.conf", "-i", dir.path() + "/rsyslogd.pid"},
        dir.path() + "/rsyslogd.log");
  };
  {
    Process rsyslog = run_rsyslog();
    EXPECT_TRUE(wait_until([&] { return stack.stored(index) == kLines; }, 30s))
        << "stored " << stack.stored(index) << " of " << kLines << "; rsyslog's log in "
        << dir.path();
    rsyslog.stop(SIGTERM);
  }
  // Its state forgotten, rsyslog reads the whole file again and sends every
  // line again: each answered 409 (document already exists), none stored twice.
  std::filesystem::remove_all(dir.path() + "/work");
  ::mkdir((dir.path() + "/work").c_str(), 0755);
  const std::int64_t before = stack.duplicates();
  {
    Process rsyslog = run_rsyslog();
    EXPECT_TRUE(wait_until([&] { return stack.duplicates() - before >= kLines; }, 30s))
        << "the resend did not arrive (duplicates " << stack.duplicates() - before << ")";
    rsyslog.stop(SIGTERM);
  }
  EXPECT_EQ(stack.stored(index), static_cast<std::size_t>(kLines));
  const HttpResponse page = HttpClient(stack.port(), 5000).get("/events?limit=1&topic=" + index);
  const json event = json::parse(page.body)["events"][0];
  EXPECT_EQ(event["source"], "rsyslog-host");
  EXPECT_EQ(event["event_id"].get<std::string>().rfind("line-", 0), 0U) << event.dump();
}

}  // namespace
}  // namespace testsupport
