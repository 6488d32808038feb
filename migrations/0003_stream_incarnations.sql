-- A stream deleted and created again numbers its messages from 1 again, so a
-- stream sequence names a message only within one incarnation of the stream.
-- Every row keyed by stream sequence now also carries the incarnation: the
-- stream's creation time in nanoseconds since the epoch, as the broker
-- reports it (stable across restarts and leader changes). Rows written before
-- this migration get 0, an incarnation older than any real one.
--
-- (stream_created, stream_seq) also orders messages: the broker accepted
-- the smaller one first. That order decides which copy of a key is the first
-- write when two copies reach the database out of order.
ALTER TABLE events ADD COLUMN stream_created BIGINT NOT NULL DEFAULT 0;

ALTER TABLE dead_letters ADD COLUMN stream_created BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_stream_seq_key;
ALTER TABLE dead_letters
    ADD CONSTRAINT dead_letters_stream_key UNIQUE (stream_created, stream_seq);

-- Duplicates and count markers are remembered for as long as the stream can
-- deliver their message again: the processor prunes only rows of earlier
-- incarnations and rows below the stream's first sequence, which the broker
-- no longer holds.
ALTER TABLE duplicate_deliveries ADD COLUMN stream_created BIGINT NOT NULL DEFAULT 0;
ALTER TABLE duplicate_deliveries DROP CONSTRAINT duplicate_deliveries_pkey;
ALTER TABLE duplicate_deliveries ADD PRIMARY KEY (stream_created, stream_seq);

ALTER TABLE duplicate_markers ADD COLUMN stream_created BIGINT NOT NULL DEFAULT 0;
ALTER TABLE duplicate_markers DROP CONSTRAINT duplicate_markers_pkey;
ALTER TABLE duplicate_markers ADD PRIMARY KEY (stream_created, stream_seq);
