#pragma once

// What the shipper protocols' handlers need from the configuration; private
// to api/.
#include "ingest/config.hpp"
#include "pipeline/settings.hpp"
#include "protocols/es_bulk.hpp"
#include "protocols/loki.hpp"
#include "protocols/otlp.hpp"

namespace ingest {

struct ProtocolSettings {
  explicit ProtocolSettings(const IngestConfig& config) : limits(config.limits) {
    otlp.topic_attribute = config.otlp_topic_attribute;
    bulk.source_fields = pipeline::split_list(config.bulk_source_fields);
    loki.topic_labels = pipeline::split_list(config.loki_topic_labels);
    loki.source_labels = pipeline::split_list(config.loki_source_labels);
  }
  pipeline::ValidationLimits limits;
  otlp::Settings otlp;
  bulk::Settings bulk;
  loki::Settings loki;
};

}  // namespace ingest
