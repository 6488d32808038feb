-- The range of event time (ts) of each sealed partition of events: one no
-- transaction can add rows to any more (processor/src/sealed_ranges.hpp), so
-- its rows' ts stay within what was recorded when it was sealed (rows only
-- leave it). GET /events reads only the partitions whose range can hold a
-- page's events (ingest/src/queries/partition_map.hpp), rather than merging
-- the newest rows of every partition. Derived data, recorded by the
-- processor that holds the partition lock; the row of a dropped partition is
-- deleted with it. ts_min and ts_max are NULL for a partition without rows.
CREATE TABLE sealed_partitions (
    partition   TEXT        PRIMARY KEY,
    to_micros   BIGINT      NOT NULL,   -- the partition's end, as attached
    ts_min      TIMESTAMPTZ,
    ts_max      TIMESTAMPTZ,
    sealed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
