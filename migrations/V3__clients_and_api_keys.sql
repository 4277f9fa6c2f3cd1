-- Clients, their API keys and their limits; every order belongs to a client.
--
-- Rollback note: the idempotency key becomes unique per client, so the global unique constraint
-- goes. Code from before this migration uses `ON CONFLICT (idempotency_key)` and cannot insert
-- orders on this schema: roll back the code only together with a restore, not across V3 alone.
-- (Orders created by such code would get the default client; the column keeps that default.)

CREATE TABLE clients (
    id                   text PRIMARY KEY
                         CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- Limits: requests per second over all routes, and orders not yet final (pending/placing).
    requests_per_second  integer NOT NULL DEFAULT 50 CHECK (requests_per_second > 0),
    max_open_orders      integer NOT NULL DEFAULT 1000 CHECK (max_open_orders > 0)
);

-- What each client used of its limits: soft state, rewritten on every request. UNLOGGED, so
-- that updating it writes no WAL and its commits never wait for a disk flush (a transaction that
-- wrote only unlogged tables commits asynchronously); after a crash it is empty and refills
-- itself. No foreign key: checking one would lock the client row, which is WAL-logged.
CREATE UNLOGGED TABLE client_usage (
    client_id        text PRIMARY KEY,
    -- Fixed one-second window of the request counter (Unix seconds) and its count.
    rate_window      bigint NOT NULL DEFAULT 0,
    rate_count       integer NOT NULL DEFAULT 0,
    -- The open-order count, recounted at most once a second and raised by one per POST within
    -- the rate in between, so that a POST costs no scan of the client's open orders.
    open_orders      integer NOT NULL DEFAULT 0,
    open_counted_at  timestamptz
);

-- Every order that exists now was made before clients existed.
INSERT INTO clients (id) VALUES ('default');

CREATE TABLE api_keys (
    -- The public half of the key (16 hex digits); the secret is stored only as a hash.
    key_id      text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    client_id   text NOT NULL REFERENCES clients (id),
    -- HMAC-SHA-256 of the secret, keyed with the pepper from Secrets Manager.
    key_hash    bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    label       text NOT NULL DEFAULT '' CHECK (char_length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX api_keys_client_id_idx ON api_keys (client_id, created_at);

ALTER TABLE orders
    ADD COLUMN client_id text NOT NULL DEFAULT 'default' REFERENCES clients (id);

ALTER TABLE orders DROP CONSTRAINT orders_idempotency_key_key;
ALTER TABLE orders
    ADD CONSTRAINT orders_client_idempotency_key_key UNIQUE (client_id, idempotency_key);

-- A client's newest-first list, with and without a status filter.
CREATE INDEX orders_client_id_idx ON orders (client_id, id DESC);
CREATE INDEX orders_client_status_id_idx ON orders (client_id, status, id DESC);
-- The once-a-second recount of a client's open orders.
CREATE INDEX orders_open_by_client_idx ON orders (client_id)
    WHERE status IN ('pending', 'placing');
