#include "body_coding.hpp"

#include <zlib.h>

#include <stdexcept>

namespace loadtest {

const char* BodyCoding::content_type() const {
  return format == BodyFormat::kNdjson ? "application/x-ndjson" : "application/json";
}

std::string encode_body(const Workload& workload, const std::vector<PlannedEvent>& events,
                        const BodyCoding& coding) {
  std::string body;
  if (coding.format == BodyFormat::kJsonArray) {
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
