-- Events: the permanent truth for deduplication. UNIQUE(topic, event_id) is
-- what makes "stored exactly once" hold whatever the broker window did.
CREATE TABLE events (
    id          BIGSERIAL   PRIMARY KEY,
    topic       TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    source      TEXT        NOT NULL,
    payload     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    -- JetStream stream sequence of the message that stored the row: a
    -- redelivery of that same message is recognised and not counted again.
    stream_seq  BIGINT      NOT NULL,
    stored_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_topic_event_id_key UNIQUE (topic, event_id)
);

-- GET /events reads in (timestamp, arrival) order, arrival being the stream
-- sequence, with optional topic or source filters and keyset pagination.
CREATE INDEX events_ts_idx ON events (ts, stream_seq, id);
CREATE INDEX events_topic_ts_idx ON events (topic, ts, stream_seq, id);
CREATE INDEX events_source_ts_idx ON events (source, ts, stream_seq, id);

-- Durable counters, sharded so that no single row sits in every request's
-- path. A value is the sum over its shards.
CREATE TABLE pipeline_counters (
    name   TEXT     NOT NULL,
    shard  SMALLINT NOT NULL,
    value  BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (name, shard)
);

CREATE TABLE topic_counters (
    topic  TEXT     NOT NULL,
    shard  SMALLINT NOT NULL,
    value  BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, shard)
);

-- Messages that no retry can fix: kept with the reason, then acked.
CREATE TABLE dead_letters (
    id          BIGSERIAL   PRIMARY KEY,
    stream_seq  BIGINT      NOT NULL,
    subject     TEXT        NOT NULL,
    reason      TEXT        NOT NULL,
    raw         BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_stream_seq_key UNIQUE (stream_seq)
);

-- Messages that were counted as duplicates, by stream sequence, so that a
-- redelivery of such a message (ack lost after COMMIT) is not counted twice.
-- Rows at or below the consumer's ack floor can never be redelivered and are
-- pruned by the processor.
CREATE TABLE duplicate_deliveries (
    stream_seq  BIGINT      PRIMARY KEY,
    topic       TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
