-- The enqueued mark (`UPDATE orders SET enqueued_at = now() …`, batched by the api a few
-- milliseconds after each insert) only saves the sweeper work, yet it cost as much as the insert
-- itself: `enqueued_at` was in the predicate of `orders_not_enqueued_idx`, so no mark could be a
-- HOT update and each one added a new entry to every index of `orders` (issue #12, BENCHMARKS §7).
--
-- 1. The index goes. The sweeper's scan (pending, not enqueued, oldest first) is served by the
--    indexes of open orders (`orders_open_by_client_idx`, `orders_pending_expiry_idx`): pending
--    orders are the few in flight plus the parked ones, and parked orders were in the dropped
--    index too (300 000 placed and 1 000 pending orders: the scan and sort take 0.4 ms).
-- 2. Pages keep a fifth free, so the marked row's new version fits beside the old one on the
--    same page (applies to pages written from now on; nothing is rewritten).
-- With the mark no longer touching `updated_at` (an index key of `orders_pending_cancel_idx`),
-- 69 % of marks were HOT in a trial of 3 000 orders marked 30 at a time (fillfactor 100: 54 %,
-- 70: 78 %; before this migration: none).
--
-- Backward compatible: the previous release runs the same statements; its mark also sets
-- `updated_at`, which only keeps its marks from being HOT. Both statements take brief locks and
-- scan nothing.
ALTER TABLE orders SET (fillfactor = 80);
DROP INDEX orders_not_enqueued_idx;
