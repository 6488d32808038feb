#include "loadgen_report.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include "format.hpp"

namespace loadgen {
namespace {

using loadtest::format_count;
using loadtest::format_number;
using loadtest::per_second;
using nlohmann::json;

double percentile_ms(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1] / 1000.0;
}

// The end-to-end figures and the /stats check of the summary.
void summarize_verification(std::ostream& out, const loadtest::Workload& workload,
                            const RunOutcome& r) {
  if (!r.verification) {
    out << "  verification       skipped (--no-verify)\n";
    return;
  }
  const Verification& v = *r.verification;
  const Stats d = v.after.minus(v.before);
  if (v.done) {
    out << "  end to end         " << format_number(v.end_to_end_seconds, 3) << " s, "
        << format_number(per_second(r.sent, v.end_to_end_seconds), 0) << " events/s\n";
  }
  out << "  /stats delta       unique_processed +" << d.unique_processed << " (sent "
      << workload.unique() << "), duplicate_dropped +" << d.duplicate_dropped << " (sent "
      << workload.duplicates()
      << (r.totals.ambiguous > 0
              ? ", up to +" + std::to_string(r.totals.ambiguous) + " from retries"
              : std::string())
      << "; broker " << d.duplicates_broker << ", database " << d.duplicates_database
      << "), pending " << v.after.pending << "\n";
  out << "  verification       " << (v.ok ? "OK" : "FAILED") << "\n";
  for (const auto& m : v.mismatches) out << "    - " << m << "\n";
}

}  // namespace

std::string summary(const Options& o, const loadtest::Workload& workload, const RunOutcome& r) {
  const Totals& t = r.totals;
  std::ostringstream out;
  out << "\nloadgen summary (run id " << o.workload.run_id << ")\n";
  out << "  events sent        " << format_count(r.sent) << " (" << format_count(workload.unique())
      << " unique, " << format_count(workload.duplicates())
      << " duplicates: " << format_count(workload.duplicates_within_request())
      << " within a request, " << format_count(workload.duplicates_across_requests())
      << " across requests)\n";
  out << "  requests           " << format_count(t.requests) << " (" << format_count(t.retries)
      << " retries, " << format_count(t.connection_errors) << " connection errors, "
      << format_count(t.timeouts) << " timeouts)\n";
  out << "  bytes on the wire  " << format_count(t.bytes_sent) << " sent ("
      << format_number(
             r.sent > 0 ? static_cast<double>(t.bytes_sent) / static_cast<double>(r.sent) : 0.0, 1)
      << " per event; " << loadtest::body_format_name(o.coding.format)
      << (o.coding.gzip ? ", gzip" : "") << ")\n";
  out << "  HTTP status        ";
  for (const auto& [status, count] : t.status_counts)
    out << status << ": " << format_count(count) << "  ";
  out << "\n  answers per event  accepted " << format_count(t.accepted) << ", duplicate "
      << format_count(t.duplicates) << ", taken (new or repeat: unsaid) "
      << format_count(t.delivered) << ", rejected " << format_count(t.rejected) << ", failed "
      << format_count(t.failed) << "\n";
  out << "  publish time       " << format_number(r.publish_seconds, 3) << " s\n";
  out << "  request throughput " << format_number(per_second(t.responses, r.publish_seconds), 0)
      << " req/s\n";
  out << "  event throughput   " << format_number(per_second(r.sent, r.publish_seconds), 0)
      << " events/s\n";
  out << "  latency            p50 " << format_number(percentile_ms(t.latencies_us, 0.50), 2)
      << " ms, p95 " << format_number(percentile_ms(t.latencies_us, 0.95), 2) << " ms, p99 "
      << format_number(percentile_ms(t.latencies_us, 0.99), 2) << " ms, max "
      << format_number(percentile_ms(t.latencies_us, 1.0), 2) << " ms\n";
  out << "  loadgen CPU        " << format_number(r.cpu_seconds, 2) << " s ("
      << format_number(100 * r.cpu_seconds / r.publish_seconds, 0) << "% of one core)\n";
  summarize_verification(out, workload, r);
  if (r.errors()) {
    out << "  errors             " << format_count(t.gave_up) << " events given up, "
        << format_count(t.permanent) << " refused, " << format_count(t.rejected)
        << " rejected; first: " << t.first_error << "\n";
  }
  return out.str();
}

json results_json(const Options& o, const loadtest::Workload& workload, const RunOutcome& r,
                  json samples) {
  const auto& w = o.workload;
  const Totals& t = r.totals;
  json status_counts = json::object();
  for (const auto& [status, count] : t.status_counts) status_counts[std::to_string(status)] = count;
  json j = {
      {"tool", "loadgen"},
      {"config",
       {{"url", o.url},
        {"events", w.events},
        {"duration_seconds", static_cast<double>(o.duration.count()) / 1000},
        {"connections", o.connections},
        {"batch", w.batch},
        {"duplicates", w.duplicate_ratio},
        {"within_request", w.within_request_share},
        {"topics", w.topics},
        {"topic_prefix", w.topic_prefix},
        {"body", loadtest::body_format_name(o.coding.format)},
        {"gzip", o.coding.gzip},
        {"payload_bytes", w.payload_bytes},
        {"rate", o.rate},
        {"seed", w.seed},
        {"run_id", w.run_id}}},
      {"events_sent", r.sent},
      {"unique_sent", workload.unique()},
      {"duplicates_sent", workload.duplicates()},
      {"duplicates_within_request", workload.duplicates_within_request()},
      {"duplicates_across_requests", workload.duplicates_across_requests()},
      {"requests", t.requests},
      {"bytes_sent", t.bytes_sent},
      {"bytes_per_event",
       r.sent > 0 ? static_cast<double>(t.bytes_sent) / static_cast<double>(r.sent) : 0.0},
      {"retries", t.retries},
      {"connection_errors", t.connection_errors},
      {"timeouts", t.timeouts},
      {"status_counts", status_counts},
      {"answers",
       {{"accepted", t.accepted},
        {"duplicate", t.duplicates},
        {"delivered", t.delivered},
        {"rejected", t.rejected},
        {"failed", t.failed}}},
      {"ambiguous_event_attempts", t.ambiguous},
      {"events_given_up", t.gave_up},
      {"events_refused", t.permanent},
      {"publish_seconds", r.publish_seconds},
      {"requests_per_second", per_second(t.responses, r.publish_seconds)},
      {"events_per_second", per_second(r.sent, r.publish_seconds)},
      {"latency_ms",
       {{"p50", percentile_ms(t.latencies_us, 0.50)},
        {"p95", percentile_ms(t.latencies_us, 0.95)},
        {"p99", percentile_ms(t.latencies_us, 0.99)},
        {"max", percentile_ms(t.latencies_us, 1.0)}}},
      {"loadgen_cpu_seconds", r.cpu_seconds},
      {"samples", std::move(samples)},
  };
  if (const auto& v = r.verification) {
    j["verify"] = {
        {"done", v->done},
        {"ok", v->ok},
        {"end_to_end_seconds", v->end_to_end_seconds},
        {"end_to_end_events_per_second", v->done ? per_second(r.sent, v->end_to_end_seconds) : 0.0},
        {"stats_before", v->before.to_json()},
        {"stats_after", v->after.to_json()},
        {"delta", v->after.minus(v->before).to_json()},
        {"mismatches", v->mismatches}};
  }
  return j;
}

}  // namespace loadgen
