-- V5: the admission of a POST /orders hands its verdict to the insert through a token row.
--
-- A POST is sent as two statements in one round trip (pipelined, each its own transaction):
-- the admission, which counts the request in the client's usage row and, if admitted, writes a
-- token named by the new order's id; then the insert, which consumes the token and stores the
-- order only if there was one. Keeping them apart keeps the usage row's lock out of the order's
-- commit (which waits for a WAL flush): one statement would serialise each client's orders
-- behind one disk flush each. Session state (a variable set by the first statement) would pin
-- RDS Proxy, so the verdict travels in a row.
--
-- UNLOGGED like client_usage: no WAL, so the admission still commits without a flush; after a
-- crash the table is empty, which only refuses the inserts of admissions in flight (their
-- requests fail with a 500 and are retried by the client with its idempotency key).
-- Rollback: older releases never read or write this table.
CREATE UNLOGGED TABLE admission_tokens (
    order_id    uuid PRIMARY KEY,
    client_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A token is consumed at once; one is left behind only when the connection is lost between the
-- two statements. The sweeper deletes those by age.
CREATE INDEX admission_tokens_created_at ON admission_tokens (created_at);
