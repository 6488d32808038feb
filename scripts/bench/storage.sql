-- What the events table takes in PostgreSQL, per part, as one JSON object
-- (scripts/bench.sh, after scenario 3): rows, the heap, TOAST with the free
-- space and visibility maps, and each index summed over the partitions (the
-- per-partition UNIQUE (key_hash) under its own name).
WITH parts AS (
  SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = 'events'::regclass
), indexes AS (
  SELECT COALESCE(parent.relname, 'events_key_hash (unique, per partition)') AS name,
         pg_relation_size(i.indexrelid) AS bytes
  FROM pg_index i
  JOIN parts p ON p.oid = i.indrelid
  LEFT JOIN pg_inherits ih ON ih.inhrelid = i.indexrelid
  LEFT JOIN pg_class parent ON parent.oid = ih.inhparent
)
SELECT json_build_object(
  'rows', (SELECT count(*) FROM events),
  'partitions', (SELECT count(*) FROM parts),
  'total_bytes', (SELECT COALESCE(sum(pg_total_relation_size(oid)), 0) FROM parts),
  'heap_bytes', (SELECT COALESCE(sum(pg_relation_size(oid)), 0) FROM parts),
  'index_bytes', (SELECT COALESCE(sum(bytes), 0) FROM indexes),
  'indexes', (SELECT json_object_agg(name, bytes) FROM
                (SELECT name, sum(bytes) AS bytes FROM indexes GROUP BY name) n),
  -- Sealed partitions packed by the processor (migrations/0009): what they
  -- took just before and just after.
  'packed', (SELECT json_build_object('partitions', count(*),
                                      'bytes_before', COALESCE(sum(bytes_before_pack), 0),
                                      'bytes_after', COALESCE(sum(bytes_after_pack), 0))
             FROM sealed_partitions WHERE packed_at IS NOT NULL))
