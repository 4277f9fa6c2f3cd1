-- Time in force, cancel, retries until expiry, a shared breaker, and one alert per incident.
-- Backward compatible with the previous release: every new column is nullable or defaulted, and
-- the old code never writes them (a rollback keeps working; orders it accepts have no expiry and
-- never expire). The two new statuses are only ever written by this release.

-- After expires_at the order is never sent to the exchange (NULL: accepted before this release).
ALTER TABLE orders ADD COLUMN expires_at timestamptz;
-- A transient failure parks the order in the database until then; the sweeper sends it again.
ALTER TABLE orders ADD COLUMN next_attempt_at timestamptz;
-- The last attempt may have reached the exchange (timeout, connection lost after sending): the
-- order is retried under the same id or looked up, never failed, never expired unconfirmed.
ALTER TABLE orders ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'placing', 'placed', 'rejected', 'failed', 'expired', 'canceled'));

-- The sweeper's expiry scan: waiting orders by expiry.
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending';

-- One row: the state of the circuit breaker in front of the exchange, shared by every placer
-- instance (process memory would give each Lambda instance its own view and its own probes).
CREATE TABLE exchange_breaker (
    id                   integer PRIMARY KEY CHECK (id = 1),
    -- 'closed': calls flow; 'open': only one probe per probe interval, across all instances.
    state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    opened_at            timestamptz,
    next_probe_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
INSERT INTO exchange_breaker (id) VALUES (1);

-- Orders that failed or expired, grouped into incidents: admins get one message when an incident
-- opens and one when it is over, not one per order. Rows are written in the same statement as
-- the orders' transitions, so no failure goes unreported; alerts are published after commit and
-- marked afterwards (at least once).
CREATE TABLE alert_incidents (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What ended the orders: 'failed' or 'expired'.
    kind             text NOT NULL CHECK (kind IN ('failed', 'expired')),
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    order_count      integer NOT NULL DEFAULT 0,
    -- The first few order ids, for the alert (the rest: `orders-admin list-failed --since`).
    first_order_ids  uuid[] NOT NULL DEFAULT '{}',
    -- The first order's last exchange error: the likely cause.
    sample_error     text,
    opened_alert_at  timestamptz,
    closed_at        timestamptz,
    closed_alert_at  timestamptz,
    -- Who is publishing its next alert right now (the alerter and the sweeper both announce):
    -- the claim keeps the other from publishing it a second time.
    announce_claimed_until timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one open incident per kind: the transitions add to it.
CREATE UNIQUE INDEX alert_incidents_one_open_per_kind ON alert_incidents (kind)
    WHERE closed_at IS NULL;
