-- V8: execution reports from the exchange's feed (issue #15). The ingester stores every report
-- in `executions` (keyed by the exchange's execution id, so a report sent twice is stored once),
-- applies each one exactly once and in sequence per order to the order's fill state, and stores
-- the feed's last applied sequence in the same statement. One ingester at a time holds a lease.
--
-- Expand only, backward compatible with the previous release: the new columns are defaulted or
-- nullable and the old code never reads or writes them (it lists its columns, and V7's
-- `api_order_view` lists its own); the new tables are unknown to it. The new statuses are only
-- ever written by this release's ingester (and, later, its api's cancel). A rollback of the code
-- keeps working for every order still in an old status; an order the ingester has moved to a new
-- one reads as corrupt to the old code until the code is rolled forward (as with V4's statuses).
--
-- The open-order limit is unchanged: V7's `api_admission` counts `pending` and `placing`, the
-- orders still in the placement pipeline. `placed` never counted, so neither do the states after
-- it (`partially_filled`, `pending_cancel`, `filled`): the limit bounds what a client has queued
-- for placement, not its exposure at the exchange. Hence no new `api_admission` here.

-- The fill state of an order, kept by the ingester from the execution reports it applied:
-- shares filled so far, their exact notional (sum of quantity × price, so that the average never
-- drifts however many fills there are) and the average fill price (notional / filled, six
-- places; NULL before the first fill).
ALTER TABLE orders ADD COLUMN filled_quantity bigint NOT NULL DEFAULT 0
    CONSTRAINT orders_filled_quantity_check CHECK (filled_quantity >= 0 AND filled_quantity <= quantity);
ALTER TABLE orders ADD COLUMN filled_notional numeric(21, 2) NOT NULL DEFAULT 0
    CONSTRAINT orders_filled_notional_check CHECK (filled_notional >= 0);
ALTER TABLE orders ADD COLUMN average_fill_price numeric(16, 6)
    CONSTRAINT orders_average_fill_price_check CHECK (average_fill_price > 0);

-- The states after placement: filled in part, filled, and a cancel sent to the exchange that has
-- not been answered yet (it ends `canceled` for the unfilled rest, or `filled` if the fill won).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'placing', 'placed', 'rejected', 'failed', 'expired', 'canceled', 'partially_filled', 'filled', 'pending_cancel'));

-- Every report the ingester received, once per execution id. No foreign key to orders: a report
-- may name an order that is not (yet) stored — it is kept and applied when it can be, never
-- dropped.
CREATE TABLE executions (
    execution_id         text PRIMARY KEY CHECK (char_length(execution_id) BETWEEN 1 AND 64),
    order_id             uuid NOT NULL,
    -- The feed sequence it was first received under (a report sent again keeps its first row).
    sequence             bigint NOT NULL CHECK (sequence >= 1),
    kind                 text NOT NULL
                         CHECK (kind IN ('partial_fill', 'fill', 'canceled', 'expired', 'cancel_refused')),
    exchange_order_id    text NOT NULL,
    -- Traded (fills), canceled or expired (the unfilled rest); 0 for a refused cancel.
    quantity             bigint NOT NULL CHECK (quantity BETWEEN 0 AND 1000000000),
    -- The fill's price; NULL unless a fill.
    price                numeric(12, 2) CHECK (price > 0),
    cumulative_quantity  bigint NOT NULL CHECK (cumulative_quantity BETWEEN 0 AND 1000000000),
    remaining_quantity   bigint NOT NULL CHECK (remaining_quantity BETWEEN 0 AND 1000000000),
    -- When it happened at the exchange.
    executed_at          timestamptz NOT NULL,
    -- created_at is when the ingester received (stored) it; applied_at when it was applied to
    -- its order (NULL: kept, waiting — `waiting_reason` says for what).
    applied_at           timestamptz,
    waiting_reason       text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- An order's executions in feed order (the api's list of fills, later).
CREATE INDEX executions_order_idx ON executions (order_id, sequence);
-- The reports still waiting to be applied (normally none or a few).
CREATE INDEX executions_waiting_idx ON executions (order_id, sequence) WHERE applied_at IS NULL;

-- One row: the last feed sequence whose report has been stored (and applied, if it could be).
-- Written in the same statement as the reports, so that a resumed ingester asks the feed for
-- everything after it: no gap, nothing applied twice.
CREATE TABLE execution_feed_cursor (
    id             integer PRIMARY KEY CHECK (id = 1),
    last_sequence  bigint NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO execution_feed_cursor (id) VALUES (1);

-- Who may write reports: one ingester at a time holds the lease and renews it with every batch
-- (in the batch's own statement) and while idle; another waits and takes over once it has
-- expired. A row, not an advisory lock: the service keeps no session state on the database
-- (RDS Proxy would pin it, and a lock dies with its connection rather than with its holder).
CREATE TABLE ingester_leases (
    name        text PRIMARY KEY,
    holder      text,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ingester_leases (name) VALUES ('execution-feed');
