-- V10: the clients connected to the live order updates through API Gateway's WebSocket API
-- (issue #16). `$connect` stores a row once the key is checked, `$disconnect` deletes it, and the
-- fan-out (the one process that reads the audit trail) sends each client's order updates to its
-- rows' connections through the API Gateway Management API, deleting a row whose connection is
-- gone (410) or whose key was revoked.
--
-- Expand only: a new table the previous release never reads.
CREATE TABLE live_connections (
    -- API Gateway's connection id.
    connection_id   text PRIMARY KEY CHECK (char_length(connection_id) BETWEEN 1 AND 128),
    client_id       text NOT NULL REFERENCES clients (id),
    -- The key it connected with: a revoked key's connections are closed.
    key_id          text NOT NULL REFERENCES api_keys (key_id),
    -- `?after=<event_id>` at connect: the fan-out first sends the client's events after it (NULL:
    -- live events only, from the connection on).
    resume_after    bigint CHECK (resume_after >= 0),
    connected_at    timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX live_connections_client_idx ON live_connections (client_id);
