-- Sealed partitions packed: once no transaction can add rows to a partition
-- (0008), its b-trees are rebuilt full (fillfactor 100, REINDEX TABLE
-- CONCURRENTLY, which stops neither inserts nor queries) by the processor
-- that holds the partition lock (processor/src/packing.hpp). Random keys
-- leave index pages about 70% full, and each topic's newest entries half
-- full; packed, a partition of the bench's events takes about 100 bytes per
-- event less. An attempt is counted before its rebuild starts, so one cut
-- short (the processor killed, PostgreSQL restarted) counts too; after three
-- a partition is left as it is, and pack_error says why the last one failed.
ALTER TABLE sealed_partitions
    ADD COLUMN packed_at         TIMESTAMPTZ,
    ADD COLUMN bytes_before_pack BIGINT,
    ADD COLUMN bytes_after_pack  BIGINT,
    ADD COLUMN pack_attempts     INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN pack_error        TEXT;
