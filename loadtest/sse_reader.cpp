#include "sse_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "http.hpp"

namespace loadtest {
namespace {

constexpr std::size_t kMaxHead = std::size_t{64} * 1024;
constexpr std::size_t kCompactAfter = std::size_t{64} * 1024;

// The string value of the first member `name` of a JSON object's text, when
// it has no escapes (topics and the bench's event ids never do).
bool plain_string_member(std::string_view json, std::string_view name, std::string& out) {
  std::string key = "\"";
  key.append(name);
  key += '"';
  std::size_t pos = json.find(key);
  if (pos == std::string_view::npos) return false;
  pos += key.size();
  while (pos < json.size() && (json[pos] == ' ' || json[pos] == ':')) ++pos;
  if (pos >= json.size() || json[pos] != '"') return false;
  const std::size_t end = json.find('"', ++pos);
  if (end == std::string_view::npos) return false;
  const std::string_view value = json.substr(pos, end - pos);
  if (value.find('\\') != std::string_view::npos) return false;
  out.assign(value);
  return true;
}

// The topic and event_id of an event's JSON: the quick way, else parsed.
void take_fields(std::string_view data, SseEvent& event) {
  if (plain_string_member(data, "topic", event.topic) &&
      plain_string_member(data, "event_id", event.event_id)) {
    return;
  }
  const auto j = nlohmann::json::parse(data, nullptr, false);
  if (!j.is_object()) return;
  if (j.contains("topic") && j.at("topic").is_string()) event.topic = j.at("topic");
  if (j.contains("event_id") && j.at("event_id").is_string()) event.event_id = j.at("event_id");
}

// Drops the consumed front of `buffer` now and then (not per read: cheap).
void compact(std::string& buffer, std::size_t& pos) {
  if (pos == buffer.size()) {
    buffer.clear();
    pos = 0;
  } else if (pos > kCompactAfter) {
    buffer.erase(0, pos);
    pos = 0;
  }
}

}  // namespace

bool parse_sse_id(std::string_view id, std::uint64_t& created, std::uint64_t& seq) {
  const auto dash = id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return false;
  const auto number = [](std::string_view digits, std::uint64_t& out) {
    out = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  return number(id.substr(0, dash), created) && number(id.substr(dash + 1), seq);
}

bool SseReader::fail(std::string what) {
  error_ = std::move(what);
  return false;
}

bool SseReader::feed(const char* data, std::size_t size, std::vector<SseEvent>& events) {
  if (!error_.empty()) return false;
  bytes_ += size;
  raw_.append(data, size);
  if (!head_done_ && !read_head()) return false;
  if (!head_done_) return true;
  if (status_ != 200) {
    if (raw_.size() - raw_pos_ >= content_length_) {
      error_body_ = raw_.substr(raw_pos_, content_length_);
      complete_ = true;
    }
    return true;
  }
  if (chunked_) {
    if (!read_chunks()) return false;
  } else {
    body_.append(raw_, raw_pos_, std::string::npos);
    raw_pos_ = raw_.size();
  }
  compact(raw_, raw_pos_);
  read_frames(events);
  return true;
}

bool SseReader::read_head() {
  const std::size_t end = raw_.find("\r\n\r\n");
  if (end == std::string::npos) {
    return raw_.size() > kMaxHead ? fail("response head over 64 KiB") : true;
  }
  std::string error;
  status_ = read_response_head(
      std::string_view(raw_.data(), end),
      [&](std::string_view name, std::string_view value) {
        if (iequals(name, "transfer-encoding")) chunked_ = iequals(value, "chunked");
        if (iequals(name, "content-length")) {
          content_length_ = std::strtoul(std::string(value).c_str(), nullptr, 10);
        }
      },
      &error);
  if (status_ == 0) return fail(error);
  head_done_ = true;
  raw_pos_ = end + 4;
  return true;
}

bool SseReader::read_chunks() {
  while (raw_pos_ < raw_.size() && !complete_) {
    if (chunk_crlf_) {
      if (raw_.size() - raw_pos_ < 2) return true;
      if (raw_.compare(raw_pos_, 2, "\r\n") != 0)
        return fail("a chunk's data is not followed by CRLF");
      raw_pos_ += 2;
      chunk_crlf_ = false;
      continue;
    }
    if (chunk_left_ == 0) {
      const std::size_t eol = raw_.find("\r\n", raw_pos_);
      if (eol == std::string::npos) {
        return raw_.size() - raw_pos_ > 128 ? fail("a chunk size line over 128 bytes") : true;
      }
      char* end = nullptr;
      const unsigned long long n = std::strtoull(raw_.c_str() + raw_pos_, &end, 16);
      if (end == raw_.c_str() + raw_pos_) return fail("a chunk size that is not hexadecimal");
      raw_pos_ = eol + 2;
      if (n == 0) {
        complete_ = true;  // the last chunk: the server ended the stream
        return true;
      }
      chunk_left_ = static_cast<std::size_t>(n);
      continue;
    }
    const std::size_t n = std::min(chunk_left_, raw_.size() - raw_pos_);
    body_.append(raw_, raw_pos_, n);
    raw_pos_ += n;
    chunk_left_ -= n;
    chunk_crlf_ = chunk_left_ == 0;
  }
  return true;
}

void SseReader::read_frames(std::vector<SseEvent>& events) {
  for (;;) {
    const std::size_t end = body_.find("\n\n", body_pos_);
    if (end == std::string::npos) break;
    read_frame(std::string_view(body_).substr(body_pos_, end - body_pos_), events);
    body_pos_ = end + 2;
  }
  compact(body_, body_pos_);
}

void SseReader::read_frame(std::string_view frame, std::vector<SseEvent>& events) {
  SseEvent event;
  std::string data;
  std::string_view type;
  bool has_data = false;
  while (!frame.empty()) {
    const std::size_t eol = frame.find('\n');
    const std::string_view line = frame.substr(0, eol);
    frame = eol == std::string_view::npos ? std::string_view() : frame.substr(eol + 1);
    if (line.empty()) continue;
    if (line.front() == ':') {
      ++pings_;  // a comment: the server's heartbeat
      continue;
    }
    const std::size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "id") {
      event.id.assign(value);
    } else if (field == "event") {
      type = value;
    } else if (field == "data") {
      if (has_data) data += '\n';
      data.append(value);
      has_data = true;
    } else if (field == "retry") {
      ++retry_fields_;
    }
  }
  if (!has_data || (!type.empty() && type != "event")) return;
  take_fields(data, event);
  events.push_back(std::move(event));
}

}  // namespace loadtest
