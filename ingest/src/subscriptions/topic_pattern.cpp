#include "subscriptions/topic_pattern.hpp"

namespace ingest {
namespace {

bool topic_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

std::optional<TopicPattern> TopicPattern::parse(std::string_view text, std::size_t max_length,
                                                std::string* error) {
  TopicPattern pattern;
  pattern.text_ = std::string(text);
  if (text.empty() || text.size() > max_length) {
    *error = "topic: must be 1 to " + std::to_string(max_length) + " characters";
    return std::nullopt;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view token =
        text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const bool last = dot == std::string_view::npos;
    if (token.empty()) {
      *error = "topic: a pattern has no empty token (" + pattern.text_ + ")";
      return std::nullopt;
    }
    if (token == "*" || token == ">") {
      if (token == ">" && !last) {
        *error = "topic: '>' may only be the last token";
        return std::nullopt;
      }
      pattern.wildcard_ = true;
    } else {
      for (const char c : token) {
        if (!topic_char(c)) {
          *error = "topic: a token is characters of [A-Za-z0-9_-], or * or >";
          return std::nullopt;
        }
      }
    }
    pattern.tokens_.emplace_back(token);
    if (last) break;
    start = dot + 1;
  }
  return pattern;
}

bool TopicPattern::matches(std::string_view topic) const {
  if (tokens_.empty()) return true;
  if (!wildcard_) return topic == text_;
  std::size_t start = 0;
  for (const std::string& pattern_token : tokens_) {
    if (start > topic.size()) return false;  // the topic has fewer tokens
    if (pattern_token == ">") return start < topic.size();
    const std::size_t dot = topic.find('.', start);
    const std::size_t end = dot == std::string_view::npos ? topic.size() : dot;
    const std::string_view token = topic.substr(start, end - start);
    if (pattern_token != "*" && token != pattern_token) return false;
    start = end + 1;  // past the dot, or past the end when there is none
  }
  return start == topic.size() + 1;  // every token of the topic used
}

std::string TopicPattern::literal_prefix() const {
  if (!wildcard_) return text_;
  std::string prefix;
  for (const auto& token : tokens_) {
    if (token == "*" || token == ">") break;
    prefix += token;
    prefix += '.';
  }
  return prefix;
}

}  // namespace ingest
