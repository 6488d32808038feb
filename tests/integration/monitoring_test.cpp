// A real Prometheus scrapes the real ingest and processor while events flow;
// then every PromQL expression of the Grafana dashboard and of the alert
// rules is evaluated through Prometheus's HTTP API. A dashboard query that
// returns nothing fails the test.
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "pipeline_fixture.hpp"
#include "sse_client.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string url_encode(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

// Every `expr` of the alert rules file, read with yaml-cpp.
std::vector<std::string> alert_expressions(const std::string& path) {
  std::vector<std::string> exprs;
  for (const auto& group : YAML::LoadFile(path)["groups"]) {
    for (const auto& rule : group["rules"]) {
      if (rule["expr"]) exprs.push_back(rule["expr"].as<std::string>());
    }
  }
  return exprs;
}

// Both services, with the processor's /metrics on.
class Monitoring : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    processor_metrics_ = true;
    start_processor();
    start_ingest();
  }
};

TEST_F(Monitoring, EveryDashboardAndAlertQueryWorksAgainstARealPrometheus) {
  // make test installs Prometheus (scripts/packages-test.txt): its absence
  // is a broken set-up, not a reason to pass.
  ASSERT_TRUE(fs::exists("/usr/bin/prometheus"))
      << "prometheus is not installed (make test-deps installs it)";
  const std::string repo = PIPELINE_SOURCE_DIR;
  TempDir dir("prometheus-test");
  const std::uint16_t port = free_port();
  std::ofstream(dir.path() + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "rule_files:\n  - " << repo << "/monitoring/prometheus/rules/alerts.yml\n"
      << "scrape_configs:\n"
      << "  - job_name: ingest\n    static_configs:\n      - targets: ['127.0.0.1:"
      << ingest_->port() << "']\n"
      << "  - job_name: processor\n    static_configs:\n      - targets: ['127.0.0.1:"
      << processor_->metrics_port() << "']\n";
  Process prometheus({"prometheus", "--config.file=" + dir.path() + "/prometheus.yml",
                      "--storage.tsdb.path=" + dir.path() + "/data",
                      "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                     dir.path() + "/prometheus.log");
  HttpClient api(port, 10000);
  const auto query = [&](const std::string& expr) {
    const HttpResponse response = api.get("/api/v1/query?query=" + url_encode(expr));
    return response.status == 0 ? json() : json::parse(response.body, nullptr, false);
  };
  ASSERT_TRUE(wait_until(
      [&] {
        const json r = query("sum(up)");
        return r.is_object() && r["status"] == "success" && !r["data"]["result"].empty() &&
               r["data"]["result"][0]["value"][1] == "2";
      },
      std::chrono::seconds(60)))
      << "Prometheus never scraped both targets; see " << dir.path() << "/prometheus.log";

  // A subscriber for the subscription panels, and one that leaves.
  SseClient subscriber(ingest_->port(), "/subscribe");
  {
    SseClient(ingest_->port(), "/subscribe?topic=gone").wait_for(1, std::chrono::milliseconds(300));
  }
  ASSERT_TRUE(wait_until([&] { return !subscriber.raw().empty(); }, std::chrono::seconds(10)));
  // Traffic for a few scrapes: accepted, duplicate and rejected events.
  json bad = event("m", "bad");
  bad["timestamp"] = "not a time";
  for (int round = 0; round < 8; ++round) {
    json batch = json::array();
    for (int i = 0; i < 50; ++i) batch.push_back(event("m", std::to_string(round * 50 + i)));
    batch.push_back(event("m", "0"));  // a duplicate
    batch.push_back(bad);
    ASSERT_EQ(publish(batch).status, 200);
    http().get("/events?limit=1");
    // Spread over scrapes: the next round waits until Prometheus has seen
    // this one.
    const std::string seen = std::to_string((round + 1) * 51);
    ASSERT_TRUE(wait_until(
        [&] {
          const json r =
              query("sum(pipeline_ingest_events_total{outcome=~\"accepted|duplicate\"})");
          return r.is_object() && !r["data"]["result"].empty() &&
                 r["data"]["result"][0]["value"][1] == seen;
        },
        std::chrono::seconds(20)))
        << "Prometheus never scraped round " << round;
  }
  wait_for_idle(400);

  const json dashboard =
      json::parse(read_file(repo + "/monitoring/grafana/dashboards/pipeline.json"));
  std::vector<std::pair<std::string, std::string>> dashboard_exprs;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel.value("targets", json::array())) {  // rows have none
      dashboard_exprs.emplace_back(panel["title"].get<std::string>(), target["expr"]);
    }
  }
  ASSERT_GE(dashboard_exprs.size(), 20u);
  for (const auto& title_and_expr : dashboard_exprs) {
    const std::string& title = title_and_expr.first;
    const std::string& expr = title_and_expr.second;
    json result;
    // rate() over the last minute needs two scrapes with the traffic in them.
    const bool has_data = wait_until(
        [&] {
          result = query(expr);
          if (!result.is_object() || result["status"] != "success") return false;
          // Data means a number: histogram_quantile over an empty histogram
          // (or 0/0) answers NaN, which Grafana draws as nothing.
          for (const auto& series : result["data"]["result"]) {
            const std::string value = series["value"][1];
            if (value != "NaN" && value != "+Inf" && value != "-Inf") return true;
          }
          return false;
        },
        std::chrono::seconds(20));
    EXPECT_TRUE(has_data) << "panel \"" << title << "\" has no data: " << expr << "\n"
                          << result.dump();
  }

  const auto alerts = alert_expressions(repo + "/monitoring/prometheus/rules/alerts.yml");
  ASSERT_EQ(alerts.size(), 17u);
  for (const auto& expr : alerts) {
    const json result = query(expr);
    EXPECT_EQ(result["status"], "success") << expr << "\n" << result.dump();
  }
  // The rules loaded, and none fires on a healthy pipeline.
  const HttpResponse rules = api.get("/api/v1/rules");
  ASSERT_EQ(rules.status, 200);
  const json groups = json::parse(rules.body)["data"]["groups"];
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["rules"].size(), 17u);
  for (const auto& rule : groups[0]["rules"]) {
    EXPECT_EQ(rule["health"], "ok") << rule.dump();
    EXPECT_NE(rule["state"], "firing") << rule.dump();
  }
}

// Needs no Prometheus: what ingest's /metrics shows.
TEST_F(PipelineTest, MetricsCarryNoEventData) {
  start_processor();
  start_ingest();
  ASSERT_EQ(publish(event("secret-topic", "secret-id")).status, 200);
  wait_for_idle(1);
  const HttpResponse ingest_metrics = http().get("/metrics");
  ASSERT_EQ(ingest_metrics.status, 200);
  EXPECT_NE(ingest_metrics.body.find("pipeline_ingest_events_total{outcome=\"accepted\"} 1"),
            std::string::npos)
      << ingest_metrics.body;
  EXPECT_EQ(ingest_metrics.body.find("secret"), std::string::npos) << "event data in labels";
  EXPECT_NE(ingest_metrics.body.find("pipeline_build_info"), std::string::npos);
}

}  // namespace
}  // namespace testsupport
