#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ingest {

/// A topic, or a pattern in NATS subject syntax: dot-separated tokens, `*`
/// for exactly one token, `>` (last) for one or more. "orders.*" matches
/// "orders.created" but not "orders" or "orders.a.b"; "orders.>" matches
/// both of the latter's longer forms.
class TopicPattern {
 public:
  /// Every topic (no filter).
  TopicPattern() = default;
  /// Checks `text` by the rules of topics (characters of [A-Za-z0-9._-], no
  /// empty token, at most `max_length` characters) plus the two wildcards,
  /// each a whole token and `>` only last. Sets `error` when it is not one.
  static std::optional<TopicPattern> parse(std::string_view text, std::size_t max_length,
                                           std::string* error);

  bool matches(std::string_view topic) const;
  bool everything() const { return tokens_.empty(); }
  bool exact() const { return !tokens_.empty() && !wildcard_; }
  /// The tokens before the first wildcard, dot included ("orders." for
  /// "orders.*"), the whole topic when exact, "" for everything: every
  /// matching topic starts with it (a database pre-filter).
  std::string literal_prefix() const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> tokens_;
  bool wildcard_ = false;
};

}  // namespace ingest
