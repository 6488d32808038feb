#include "body_coding.hpp"

#include <zlib.h>

#include <array>
#include <stdexcept>

namespace loadtest {
namespace {

constexpr std::array<const char*, 6> kNames = {"json",      "ndjson", "otlp",
                                               "otlp-json", "bulk",   "loki"};

}  // namespace

std::optional<BodyFormat> body_format_named(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (name == kNames[i]) return static_cast<BodyFormat>(i);
  }
  return std::nullopt;
}

const char* body_format_name(BodyFormat format) {
  return kNames.at(static_cast<std::size_t>(format));
}

std::optional<Protocol> BodyCoding::protocol() const {
  switch (format) {
    case BodyFormat::kOtlpProtobuf:
      return Protocol::kOtlpProtobuf;
    case BodyFormat::kOtlpJson:
      return Protocol::kOtlpJson;
    case BodyFormat::kBulk:
      return Protocol::kBulk;
    case BodyFormat::kLoki:
      return Protocol::kLoki;
    case BodyFormat::kJsonArray:
    case BodyFormat::kNdjson:
      break;
  }
  return std::nullopt;
}

const char* BodyCoding::content_type() const {
  if (const auto p = protocol()) return protocol_content_type(*p);
  return format == BodyFormat::kNdjson ? "application/x-ndjson" : "application/json";
}

const char* BodyCoding::path() const {
  if (const auto p = protocol()) return protocol_path(*p);
  return "/publish";
}

std::string encode_body(const Workload& workload, const std::vector<PlannedEvent>& events,
                        const BodyCoding& coding) {
  std::string body;
  if (const auto p = coding.protocol()) {
    body = protocol_body(*p, workload, events);
  } else if (coding.format == BodyFormat::kJsonArray) {
    body = workload.request_body(events);
  } else {
    body.reserve(events.size() * (workload.config().payload_bytes + 140));
    for (const PlannedEvent& event : events) {
      workload.append_event_json(body, event.key);
      body += '\n';
    }
  }
  return coding.gzip ? gzip_compress(body) : body;
}

std::string gzip_compress(std::string_view text) {
  z_stream zs{};
  // 15 window bits + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())), '\0');
  // zlib's API takes non-const input; it does not write to it.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (result != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

}  // namespace loadtest
