-- Bloom filters of the keys of sealed partitions (processor/src/
-- key_filters.hpp): a partition no transaction can add rows to any more gets
-- one, built once from its UNIQUE (key_hash) by the processor that holds the
-- partition lock, so that a batch's keys are looked up only in the
-- partitions a filter says may hold them (and in those not sealed yet),
-- rather than in every partition. Derived data: a row lost or deleted is
-- built again; the row of a dropped partition is deleted with it.
CREATE TABLE key_filters (
    partition   TEXT        PRIMARY KEY,
    to_micros   BIGINT      NOT NULL,   -- the partition's end, as attached
    bit_count   BIGINT      NOT NULL,
    hashes      INTEGER     NOT NULL,
    bits        BYTEA       NOT NULL,   -- little-endian 64-bit words
    built_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Random bits do not compress: stored out of line without trying.
ALTER TABLE key_filters ALTER COLUMN bits SET STORAGE EXTERNAL;
