-- The api's enqueued mark before and after its guard changed (BENCHMARKS §11): 500 random
-- unmarked orders per statement, each statement run with EXPLAIN ANALYZE inside a transaction
-- that is rolled back, so every run marks a fresh set. Run repeatedly against a migrated
-- database with many unmarked orders: psql -X -A -d <db> -f bench/sql/mark_guard.sql
\set QUIET on
\pset tuples_only on
SELECT array_agg(id)::text AS ids, array_agg(next_attempt_at)::text AS parks
  FROM (SELECT id, next_attempt_at FROM orders WHERE enqueued_at IS NULL
        ORDER BY random() LIMIT 500) s \gset
BEGIN;
-- Before: any order not parked into the future.
EXPLAIN (ANALYZE, FORMAT JSON)
UPDATE orders SET enqueued_at = now()
 WHERE id = ANY(:'ids'::uuid[]) AND enqueued_at IS NULL
   AND (next_attempt_at IS NULL OR next_attempt_at <= now());
ROLLBACK;
BEGIN;
-- After: only where the park is still the one the sender saw.
EXPLAIN (ANALYZE, FORMAT JSON)
UPDATE orders o SET enqueued_at = now()
  FROM unnest(:'ids'::uuid[], :'parks'::timestamptz[]) AS sent(id, parked_until)
 WHERE o.id = sent.id AND o.enqueued_at IS NULL
   AND o.next_attempt_at IS NOT DISTINCT FROM sent.parked_until;
ROLLBACK;
