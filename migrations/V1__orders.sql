-- Orders and their audit trail. Migrations are append-only and must stay backward compatible:
-- a CloudFormation rollback runs the previous code against this schema.

CREATE TABLE orders (
    id                   uuid PRIMARY KEY,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    order_type           text NOT NULL CHECK (order_type IN ('market', 'limit')),
    side                 text NOT NULL CHECK (side IN ('buy', 'sell')),
    instrument           text NOT NULL CHECK (instrument ~ '^[A-Z]{2}[A-Z0-9]{9}[0-9]$'),
    limit_price          numeric(18, 2) CHECK (limit_price > 0 AND limit_price <= 1000000000.00),
    quantity             bigint NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'placing', 'placed', 'rejected', 'failed')),
    attempts             integer NOT NULL DEFAULT 0,
    last_error           text,
    exchange_order_id    text,
    placed_at            timestamptz,
    -- Set once the order's message reached SQS; NULL + pending past a grace period = sweeper's job.
    enqueued_at          timestamptz,
    -- Keeps two concurrent sweepers from sending the same stranded order.
    sweep_claimed_until  timestamptz,
    -- A placer's claim on the order (status 'placing'); an expired lease may be taken over.
    lease_expires_at     timestamptz,
    -- Set only after the admin alert was published (at-least-once alerting).
    alerted_at           timestamptz,
    idempotency_key      text UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 100),
    -- The normalised order the key was first used with; a replay must match it.
    request_fingerprint  text NOT NULL,
    CONSTRAINT limit_price_matches_type
        CHECK ((order_type = 'limit') = (limit_price IS NOT NULL))
);

-- Newest-first keyset pagination: ids are UUIDv7, so id order is creation order.
CREATE INDEX orders_status_id_idx ON orders (status, id DESC);

-- The sweeper's scan: only the (normally tiny) set of orders never marked enqueued.
CREATE INDEX orders_not_enqueued_idx ON orders (created_at)
    WHERE enqueued_at IS NULL AND status = 'pending';

CREATE TABLE order_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES orders (id),
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    attempt     integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_events_order_id_idx ON order_events (order_id, id);
