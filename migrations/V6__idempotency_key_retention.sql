-- V6: idempotency keys are kept for a retention (24 hours by default), then the key is free
-- again. A key lives in its own row, so that releasing it never touches its order: the sweeper
-- deletes expired rows here in bounded batches, and a request that finds an expired row not yet
-- deleted takes it over for its new order.
--
-- Backward compatible: orders.idempotency_key and its unique constraint stay, so the previous
-- release (which writes that column with ON CONFLICT (client_id, idempotency_key)) keeps
-- working after a rollback. This release writes NULL there and reads only this table; keys
-- stored before it are copied below, with their original time. A rollback forgets the keys
-- first used under this release (a retry across it with such a key makes a second order), and
-- keys used after it again live in orders.idempotency_key, which this release no longer reads.
CREATE TABLE idempotency_keys (
    client_id            text NOT NULL,
    idempotency_key      text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 100),
    -- The order the key names (no foreign key: the key row is written in the same statement,
    -- just before its order).
    order_id             uuid NOT NULL,
    -- The normalised order the key was first used with; a replay must match it.
    request_fingerprint  text NOT NULL,
    -- When the key was taken: it is free again once the retention has passed since.
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, idempotency_key)
);

-- The sweeper's release scan: oldest keys first.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

INSERT INTO idempotency_keys (client_id, idempotency_key, order_id, request_fingerprint, created_at)
SELECT client_id, idempotency_key, id, request_fingerprint, created_at
FROM orders
WHERE idempotency_key IS NOT NULL;
