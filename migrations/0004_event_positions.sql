-- GET /subscribe walks stored events in stream position order (incarnation,
-- then sequence) up to the consumer's ack floor, and starts a replay at a
-- time of storage (since=).
CREATE INDEX events_position_idx ON events (stream_created, stream_seq);
CREATE INDEX events_stored_at_idx ON events (stored_at);
