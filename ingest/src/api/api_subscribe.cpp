// GET /subscribe (Server-Sent Events) and GET / (the live page): thin
// handlers over the subscription hub.
#include "api/api.hpp"
#include "ingest/server.hpp"
#include "subscriptions/subscribe_params.hpp"
#include "subscriptions/subscription_hub.hpp"

namespace ingest {
namespace {

// The hub's view of an SSE response.
class StreamSink final : public EventSink {
 public:
  explicit StreamSink(std::shared_ptr<http::ResponseStream> stream) : stream_(std::move(stream)) {}
  bool write(std::string_view bytes, std::size_t events) override {
    return stream_->write(bytes, events);
  }
  std::size_t pending() const override { return stream_->pending(); }
  std::size_t pending_bytes() const override { return stream_->pending_bytes(); }
  std::uint64_t taken() const override { return stream_->taken(); }
  bool open() const override { return stream_->open(); }
  void end() override { stream_->end(); }
  void abort() override { stream_->abort(); }

 private:
  std::shared_ptr<http::ResponseStream> stream_;
};

http::Response event_stream_head() {
  http::Response head;
  head.content_type = "text/event-stream; charset=utf-8";
  head.header("Cache-Control", "no-cache");
  head.header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
  return head;
}

}  // namespace

bool IngestApi::may_stream(const http::Request& request) {
  return request.method == "GET" && request.path == "/subscribe";
}

void IngestApi::subscribe(const http::Request& request, http::Responder responder) {
  std::string error;
  auto parsed = parse_subscribe_request(
      [&](const std::string& name) { return request.param(name); }, request.header("last-event-id"),
      max_field_length_, &error, accepts_cloudevents(request));
  if (!parsed) {
    responder.send(http::json_error(400, error));
    return;
  }
  if (request.method == "HEAD") {
    responder.send(event_stream_head());
    return;
  }
  SubscriptionHub::Added why = SubscriptionHub::Added::kOk;
  auto ticket = services_.hub.admit(std::move(parsed->pattern), parsed->start, &why);
  if (!ticket) {
    const bool full = why == SubscriptionHub::Added::kFull;
    http::Response response = http::json_error(
        503, full ? "too many subscriptions (SUBSCRIBE_MAX_CLIENTS); retry later"
                  : "cannot tell where the subscription starts: broker or database unavailable");
    response.header("Retry-After", full ? "5" : "1");
    responder.send(std::move(response));
    return;
  }
  ticket->cloudevents = parsed->cloudevents;
  auto stream = responder.stream(event_stream_head());
  // The reconnection delay for EventSource; a field alone dispatches nothing.
  stream->write("retry: " + std::to_string(subscribe_retry_.count()) + "\n\n", 0);
  services_.hub.attach(std::move(*ticket), std::make_shared<StreamSink>(std::move(stream)));
}

void IngestApi::live_page(const http::Request& /*request*/, http::Responder responder) {
  http::Response response;
  response.content_type = "text/html; charset=utf-8";
  response.body = live_page_html();
  responder.send(std::move(response));
}

}  // namespace ingest
