// The logic in ingest's metrics: which label a rejection, a publish error or
// a request gets. Labels are fixed sets, whatever the input.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

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

TEST(IngestMetrics, RejectionsAreLabelledByTheFieldTheErrorNames) {
  IngestMetrics metrics;
  metrics.rejected("timestamp: a time zone is required").Increment();
  metrics.rejected("topic: must be characters of [A-Za-z0-9._-]").Increment();
  metrics.rejected("broker: refused the event: maximum payload exceeded").Increment();
  metrics.rejected("secret-user-data: anything else").Increment();
  metrics.rejected("no field at all").Increment();
  const std::string family = "pipeline_ingest_events_rejected_total";
  EXPECT_EQ(value_of(metrics, family, {"reason=\"timestamp\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"topic\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"broker\""}), 1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"event\""}), 2) << "unknown fields share one label";
  EXPECT_EQ(value_of(metrics, family, {"secret-user-data"}), -1);
  EXPECT_EQ(value_of(metrics, family, {"reason=\"source\""}), 0) << "every reason exists from 0";
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
