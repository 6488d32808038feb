#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "ingest/event_store.hpp"

namespace ingest {

/// What GET /events reads from: EventStore, or a fake in unit tests.
class EventReader {
 public:
  virtual ~EventReader() = default;
  /// True once the processor has applied the schema this build reads.
  virtual bool schema_ready() = 0;
  /// One page of events; throws when the database fails.
  virtual EventPage events(const EventQuery& query) = 0;
};

/// The answer to one event query, free of HTTP: the handler turns `kind`
/// into a status in one switch.
struct EventQueryResult {
  enum class Kind {
    kPage,         ///< `body` holds the page
    kInvalid,      ///< a parameter is wrong: `error` says which
    kNoSchema,     ///< no processor has created the tables yet
    kUnavailable,  ///< the database failed
  };
  Kind kind = Kind::kPage;
  std::string body;   ///< {"count":..,"events":[..],"next_cursor":..} for kPage
  std::string error;  ///< for the other kinds
};

/// GET /events: parameters to query, query to page, page to JSON.
class EventQueryService {
 public:
  static constexpr std::size_t kMaxLimit = 1000;
  static constexpr std::size_t kDefaultLimit = 100;

  /// A query parameter by name (percent-decoded), nullopt when absent.
  using Params = std::function<std::optional<std::string>(const std::string& name)>;

  EventQueryService(EventReader& reader, std::size_t max_field_length)
      : reader_(reader), max_field_length_(max_field_length) {}

  /// Reads and checks the parameters by the rules of POST /publish: a value
  /// no event can have is the client's mistake, not a query for the database
  /// to choke on. Sets `error` (naming the parameter) when one is wrong.
  std::optional<EventQuery> parse(const Params& params, std::string* error) const;

  EventQueryResult run(const Params& params);

 private:
  EventReader& reader_;
  std::size_t max_field_length_;
};

}  // namespace ingest
