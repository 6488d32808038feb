-- Per-topic counts, compacted: batches add to topic_counters (a row per
-- topic and shard, no contention), and the processor moves those rows into
-- one row per topic here every PROCESSOR_PRUNE_INTERVAL, so that /stats
-- reads about one row per topic however many batches there were. A topic's
-- count is its row here plus its rows still in topic_counters.
CREATE TABLE topic_totals (
    topic  TEXT    PRIMARY KEY,
    value  BIGINT  NOT NULL
);
