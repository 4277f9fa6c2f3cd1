-- V9: the api shows what the exchange did with an order (issue #15): the fill state V8 added to
-- `orders` joins the api's order row, and `GET /orders/{id}/executions` gets its function.
--
-- Expand only, backward compatible with the previous release: `api_order_view` gains two columns
-- at its end (CREATE OR REPLACE VIEW may only append), so every function returning it keeps its
-- signature, and the previous release, which reads the expanded row's columns by name, ignores
-- the new ones. The new function is unknown to it.

-- The order row of V7 with the fill state: shares filled so far and their average price (null
-- before the first fill). Remaining shares are derived by the code from the status.
CREATE OR REPLACE VIEW api_order_view AS
SELECT id, client_id, created_at, order_type, side, instrument, limit_price, quantity, status,
       attempts, last_error, exchange_order_id, placed_at, alerted_at, expires_at,
       next_attempt_at, outcome_unknown, filled_quantity, average_fill_price
FROM orders;

-- `GET /orders/{id}/executions`: the admission, and one row per execution report applied to the
-- client's order, in feed order (one row without a report when the request is refused, the order
-- is not the client's or has none; `order_id` null then says the order was not found). Reports
-- still waiting to be applied are left out, so that the list always adds up to the order's
-- `filled_quantity`.
CREATE FUNCTION api_order_executions(p_key_id text, p_key_hash bytea, p_id uuid)
RETURNS TABLE (
    verdict admission_verdict, order_id uuid, execution_id text, sequence bigint, kind text,
    exchange_order_id text, quantity bigint, price numeric, cumulative_quantity bigint,
    remaining_quantity bigint, executed_at timestamptz
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    adm admission_verdict;
BEGIN
    SELECT * INTO adm FROM api_admission(p_key_id, p_key_hash, false);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT adm, o.id, e.execution_id, e.sequence, e.kind, e.exchange_order_id, e.quantity,
           e.price::numeric, e.cumulative_quantity, e.remaining_quantity, e.executed_at
    FROM (SELECT) one
    LEFT JOIN orders o ON adm.adm_ok AND o.id = p_id AND o.client_id = adm.adm_client_id
    LEFT JOIN executions e ON e.order_id = o.id AND e.applied_at IS NOT NULL
    ORDER BY e.sequence;
END
$$;

-- Cancels still unanswered, oldest first: the sweeper sends their cancel again after a while
-- (the first message may have been lost or dropped during a long exchange outage). Few rows at
-- any time: an order stays `pending_cancel` only until the exchange's report arrives.
CREATE INDEX orders_pending_cancel_idx ON orders (updated_at) WHERE status = 'pending_cancel';
