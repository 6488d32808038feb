#include "http/content_coding.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace ingest::http {
namespace {

enum class Coding { kIdentity, kGzip, kDeflate, kUnsupported };

std::string lower_trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  std::string out(text.substr(first, last - first + 1));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The one coding a header names (a list, in the order applied; identity
// adds nothing). Two real codings at once are refused: no client sends them.
Coding coding_of(std::string_view header, std::string* named) {
  std::vector<std::string> codings;
  while (!header.empty()) {
    const auto comma = header.find(',');
    std::string token = lower_trimmed(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    if (!token.empty() && token != "identity") codings.push_back(std::move(token));
  }
  if (codings.empty()) return Coding::kIdentity;
  *named = codings.front();
  if (codings.size() > 1) {
    *named = codings.front() + ", " + codings[1];
    return Coding::kUnsupported;
  }
  if (*named == "gzip" || *named == "x-gzip") return Coding::kGzip;
  if (*named == "deflate") return Coding::kDeflate;
  return Coding::kUnsupported;
}

DecodedBody failure(DecodedBody::Kind kind, std::string message) {
  DecodedBody result;
  result.kind = kind;
  result.error = std::move(message);
  return result;
}

// One zlib inflate stream, ended whatever happens.
class Inflater {
 public:
  explicit Inflater(int window_bits) { ok_ = inflateInit2(&stream_, window_bits) == Z_OK; }
  ~Inflater() {
    if (ok_) inflateEnd(&stream_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  bool ok() const { return ok_; }
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
  bool ok_ = false;
};

// Inflates `body` with zlib's `window_bits` (15 + 16: gzip; 15: zlib; -15:
// raw deflate) into at most max_output bytes. The output grows as it fills,
// never past max_output + 1 bytes: the extra byte tells "too large".
DecodedBody inflate_body(std::string_view body, int window_bits, const char* format,
                         std::size_t max_output, std::string_view limit_name) {
  Inflater inflater(window_bits);
  if (!inflater.ok()) return failure(DecodedBody::Kind::kCorrupt, "cannot inflate the body");
  z_stream& zs = inflater.stream();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  DecodedBody result;
  result.kind = DecodedBody::Kind::kDecoded;
  std::string& out = result.text;
  const std::size_t cap = max_output + 1;
  out.resize(std::min(cap, std::max<std::size_t>(4096, body.size() * 4)));
  std::size_t produced = 0;
  const std::string corrupt = std::string("body is not valid ") + format + " data: ";
  while (true) {
    if (produced == out.size()) {
      if (out.size() >= cap) break;  // full at max_output + 1: too large
      out.resize(std::min(cap, out.size() * 2));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (produced > max_output) break;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) {
        out.resize(produced);
        return result;
      }
      // gzip allows members one after another (RFC 1952 §2.2).
      const bool member =
          window_bits > 15 && zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b;
      if (!member) return failure(DecodedBody::Kind::kCorrupt, corrupt + "data after its end");
      inflateReset(&zs);
    } else if (rc == Z_BUF_ERROR && zs.avail_out > 0) {
      return failure(DecodedBody::Kind::kCorrupt, corrupt + "truncated");
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return failure(DecodedBody::Kind::kCorrupt,
                     corrupt + (zs.msg != nullptr ? zs.msg : "inflate failed"));
    }
  }
  return failure(DecodedBody::Kind::kTooLarge, "decompressed body larger than " +
                                                   std::string(limit_name) + " (" +
                                                   std::to_string(max_output) + " bytes)");
}

}  // namespace

DecodedBody decode_content(std::string_view coding, std::string_view body, std::size_t max_output,
                           std::string_view limit_name) {
  std::string named;
  switch (coding_of(coding, &named)) {
    case Coding::kIdentity:
      return DecodedBody{};
    case Coding::kGzip:
      return inflate_body(body, 15 + 16, "gzip", max_output, limit_name);
    case Coding::kDeflate: {
      // RFC 9110 §8.4.1.2: "deflate" is the zlib format; some clients send
      // raw deflate data under that name, which has no zlib header.
      DecodedBody zlib = inflate_body(body, 15, "deflate", max_output, limit_name);
      if (zlib.kind != DecodedBody::Kind::kCorrupt) return zlib;
      DecodedBody raw = inflate_body(body, -15, "deflate", max_output, limit_name);
      return raw.kind == DecodedBody::Kind::kCorrupt ? zlib : raw;
    }
    case Coding::kUnsupported:
      break;
  }
  return failure(DecodedBody::Kind::kUnsupported,
                 "Content-Encoding \"" + named.substr(0, 64) +
                     "\" is not supported: send gzip, deflate or identity (one coding)");
}

}  // namespace ingest::http
