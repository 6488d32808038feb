// The logic in ingest's metrics: which label a rejection, a publish error or
// a request gets. Labels are fixed sets, whatever the input.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "metrics.hpp"  // ingest/src (private to ingest)

namespace ingest {
namespace {

// The value of the series of `family` whose labels contain every `label`.
double value_of(IngestMetrics& metrics, const std::string& family,
                std::initializer_list<std::string> labels) {
  std::istringstream text(pipeline::metrics::serialize(*metrics.registry));
  for (std::string line; std::getline(text, line);) {
    if (line.rfind(family + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& label : labels) all = all && line.find(label) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

TEST(IngestMetrics, RejectionsAreLabelledByTheirReason) {
  IngestMetrics metrics;
  metrics.rejected(RejectReason::kTimestamp).Increment();
  metrics.rejected(RejectReason::kTopic).Increment();
  metrics.rejected(RejectReason::kBroker).Increment();
  metrics.rejected(RejectReason::kEvent).Increment();
  metrics.rejected(RejectReason::kEvent).Increment();
  const std::string family = "pipeline_ingest_events_rejected_total";
  EXPECT_EQ(value_of(metrics, family, {"reason=\"timestamp\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"topic\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"broker\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"event\""}), 2);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"source\""}), 0) << "every reason exists from 0";
}

// The reason comes from the validator's verdict, never from its message
// text: rewording a message cannot change a metric.
TEST(IngestMetrics, TheReasonOfAVerdictIsItsField) {
  const auto body = pipeline::parse_publish_body(
      R"([{"topic":"a b","event_id":"1","timestamp":"2026-11-24T10:00:00Z","source":"s"},)"
      R"({"topic":"t","event_id":"1","timestamp":"x","source":"s"},)"
      R"({"topic":"t","event_id":"1","timestamp":"2026-11-24T10:00:00Z","source":"s","payload":1}])",
      {});
  ASSERT_EQ(body.verdicts.size(), 3u);
  EXPECT_EQ(body.verdicts[0].field, pipeline::EventField::kTopic);
  EXPECT_EQ(body.verdicts[1].field, pipeline::EventField::kTimestamp);
  EXPECT_EQ(body.verdicts[2].field, pipeline::EventField::kPayload);
}

TEST(IngestMetrics, PublishErrorsAndRoutesKeepFixedLabels) {
  IngestMetrics metrics;
  metrics.publish_error(PublishError::kTimeout).Increment();
  metrics.publish_error(PublishError::kNone).Increment();  // not an error: counted as other
  metrics.publish_error(PublishError::kNotStored).Increment();
  const std::string family = "pipeline_ingest_publish_errors_total";
  EXPECT_EQ(value_of(metrics, family, {"kind=\"timeout\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"kind=\"other\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"kind=\"not_stored\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"kind=\"none\""}), -1);

  metrics.requests("/publish", 200).Increment();
  metrics.requests("/no/such/route/with/user/data", 404).Increment();
  EXPECT_EQ(
      value_of(metrics, "pipeline_http_requests_total", {"route=\"/publish\"", "code=\"200\""}), 1);
  EXPECT_EQ(value_of(metrics, "pipeline_http_requests_total", {"route=\"other\"", "code=\"404\""}),
            1);
  EXPECT_EQ(value_of(metrics, "pipeline_http_requests_total", {"user/data"}), -1);
}

}  // namespace
}  // namespace ingest
