-- Count markers of broker duplicates (one per POST /publish that had any):
-- ingest publishes one through the stream with the number of events the
-- broker's duplicate window dropped, and the processor adds it to the
-- duplicate_broker counter. Kept by stream sequence so that a redelivered
-- marker is not counted twice; rows at or below the consumer's ack floor are
-- pruned with duplicate_deliveries.
CREATE TABLE duplicate_markers (
    stream_seq  BIGINT      PRIMARY KEY,
    duplicates  INTEGER     NOT NULL CHECK (duplicates > 0),
    seen_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
