-- Sealed partitions packed: once no transaction can add rows to a partition
-- (0008), its b-trees are rebuilt full (fillfactor 100, REINDEX TABLE
-- CONCURRENTLY, which stops neither inserts nor queries) by the processor
-- that holds the partition lock (processor/src/packing.hpp). Random keys
-- leave index pages about 70% full, and each topic's newest entries half
-- full; packed, a partition of the bench's events takes about 100 bytes per
-- event less. One attempt per partition: pack_error says why it failed (a
-- REINDEX cut by the pass's statement timeout would fail again).
ALTER TABLE sealed_partitions
    ADD COLUMN packed_at         TIMESTAMPTZ,
    ADD COLUMN bytes_before_pack BIGINT,
    ADD COLUMN bytes_after_pack  BIGINT,
    ADD COLUMN pack_error        TEXT;
