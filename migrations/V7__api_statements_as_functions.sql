-- V7: the api's statements as PL/pgSQL functions, so that Postgres plans them once per server
-- connection instead of at every request.
--
-- The functions send every statement unnamed (`query_typed`), because a named prepared statement
-- is session state that pins RDS Proxy (V5, #12). An unnamed statement is planned at each
-- execution, and the api's statements are large (the admission alone is three CTEs with an
-- upsert): planning cost more Postgres CPU than running them (0.95 ms of planning per POST,
-- 0.38 ms per GET, docs/BENCHMARKS.md §6). A PL/pgSQL function keeps the plans of its static
-- statements in the server connection that ran it, whichever client borrows that connection next:
-- a plan cache on the server side, which neither PgBouncer nor RDS Proxy can see or has to keep.
-- The client then sends only `SELECT * FROM api_…($1, …)`, which plans in microseconds.
--
-- Every function is SECURITY INVOKER (the default): it runs with the caller's privileges, so the
-- application role needs nothing beyond its DML grants (EXECUTE on functions is granted to PUBLIC
-- by default; the migrator grants it to the application role explicitly as well).
--
-- Rollback: older releases never call these functions; they keep their own statements. A later
-- release that changes a function replaces it with CREATE OR REPLACE in a new migration, keeping
-- the signature an older release might call (expand, then contract).

-- What an admission tells the client: one row when the key exists and is not revoked. The
-- client decides authentication itself, by a constant-time comparison of `adm_key_hash`.
CREATE TYPE admission_verdict AS (
    adm_client_id            text,
    adm_key_hash             bytea,
    adm_requests_per_second  integer,
    adm_max_open_orders      integer,
    adm_rate_count           integer,
    adm_open_orders          integer,
    adm_ok                   boolean
);

-- The columns of an order the api returns (`ORDER_COLUMNS` in the code), as a row type the
-- functions return whole and the client expands with `(r.order_row).*`. A later migration that
-- drops or retypes one of these columns has to replace this view (and the functions) first.
CREATE VIEW api_order_view AS
SELECT id, client_id, created_at, order_type, side, instrument, limit_price, quantity, status,
       attempts, last_error, exchange_order_id, placed_at, alerted_at, expires_at,
       next_attempt_at, outcome_unknown
FROM orders;

-- The request's admission, as in `PostgresAccessControl::admit` before V7: one row when the key
-- exists and is not revoked (none otherwise), with the `adm_*` columns the client reads; `adm_ok`
-- says the hash matched and the client is within its limits. The usage row is counted only when
-- the hash matches. For a POST (`p_post`) the open-order count is kept in the usage row and
-- recounted at most once a second, under that row's lock.
CREATE FUNCTION api_admission(p_key_id text, p_key_hash bytea, p_post boolean)
RETURNS SETOF admission_verdict
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH k AS (
        SELECT a.client_id, a.key_hash, c.requests_per_second, c.max_open_orders,
               floor(extract(epoch FROM clock_timestamp()))::bigint AS second
        FROM api_keys a JOIN clients c ON c.id = a.client_id
        WHERE a.key_id = p_key_id AND a.revoked_at IS NULL
    ), u AS (
        INSERT INTO client_usage AS cu
               (client_id, rate_window, rate_count, open_orders, open_counted_at)
        SELECT k.client_id, k.second, 1,
               CASE WHEN p_post AND NOT EXISTS (
                        SELECT 1 FROM client_usage x WHERE x.client_id = k.client_id)
                    THEN (SELECT count(*)::int FROM (
                              SELECT 1 FROM orders o
                              WHERE o.client_id = k.client_id
                                AND o.status IN ('pending', 'placing')
                              LIMIT k.max_open_orders) open) + 1
                    ELSE 0 END,
               CASE WHEN p_post THEN now() END
        FROM k WHERE k.key_hash = p_key_hash
        ON CONFLICT (client_id) DO UPDATE SET
            rate_count = CASE WHEN cu.rate_window = EXCLUDED.rate_window
                              THEN cu.rate_count + 1 ELSE 1 END,
            rate_window = EXCLUDED.rate_window,
            open_orders = CASE
                    WHEN p_post AND (cu.open_counted_at IS NULL
                                     OR cu.open_counted_at < now() - interval '1 second')
                    THEN (SELECT count(*)::int FROM (
                              SELECT 1 FROM orders o
                              WHERE o.client_id = cu.client_id
                                AND o.status IN ('pending', 'placing')
                              LIMIT (SELECT k.max_open_orders FROM k)) open)
                    ELSE cu.open_orders END
                + CASE WHEN p_post AND (CASE WHEN cu.rate_window = EXCLUDED.rate_window
                                             THEN cu.rate_count + 1 ELSE 1 END)
                                       <= (SELECT k.requests_per_second FROM k)
                       THEN 1 ELSE 0 END,
            open_counted_at = CASE
                    WHEN p_post AND (cu.open_counted_at IS NULL
                                     OR cu.open_counted_at < now() - interval '1 second')
                    THEN now() ELSE cu.open_counted_at END
        RETURNING cu.rate_count, cu.open_orders
    )
    SELECT k.client_id, k.key_hash, k.requests_per_second, k.max_open_orders,
           u.rate_count, u.open_orders,
           COALESCE(u.rate_count <= k.requests_per_second
                    AND (NOT p_post OR u.open_orders <= k.max_open_orders), false)
    FROM k LEFT JOIN u ON true;
END
$$;


-- The first of a POST's two statements (V5): the admission, and when it admits, the token named
-- by the new order's id that lets `api_insert_order` store it. Touches unlogged tables only, so
-- it commits without waiting for a WAL flush while it holds the client's usage row.
CREATE FUNCTION api_admit_order(p_key_id text, p_key_hash bytea, p_order_id uuid)
RETURNS SETOF admission_verdict
LANGUAGE plpgsql AS $$
DECLARE
    verdict admission_verdict;
BEGIN
    SELECT * INTO verdict FROM api_admission(p_key_id, p_key_hash, true);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF verdict.adm_ok THEN
        INSERT INTO admission_tokens (order_id, client_id)
        VALUES (p_order_id, verdict.adm_client_id);
    END IF;
    RETURN NEXT verdict;
END
$$;

-- The second of a POST's statements, or an admin's insert for a named client: stores the order
-- and its audit event, for the client `p_client_id` or, when that is null, the client of the
-- admission token named `p_id` (consumed; without one nothing is stored and no row returned).
--
-- The idempotency key (if any) is taken in `idempotency_keys` first: a new row, or an expired
-- one not yet released (taken over for the new order); the order is stored only if the key was
-- taken. Otherwise the one row returned is the order the key names within the retention
-- (`created` false, with the fingerprint of the request that created it). A concurrent request
-- with the same key waits for the key's row lock; each statement here takes a fresh snapshot,
-- so it then sees the winner's order.
CREATE FUNCTION api_insert_order(
    p_id uuid, p_order_type text, p_side text, p_instrument text, p_limit_price numeric,
    p_quantity bigint, p_idempotency_key text, p_fingerprint text, p_expires_at timestamptz,
    p_retention_seconds double precision, p_client_id text
)
RETURNS TABLE (created boolean, order_row api_order_view, request_fingerprint text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    owner text := p_client_id;
BEGIN
    IF owner IS NULL THEN
        DELETE FROM admission_tokens t WHERE t.order_id = p_id RETURNING t.client_id INTO owner;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (client_id, idempotency_key, order_id,
                                          request_fingerprint)
        VALUES (owner, p_idempotency_key, p_id, p_fingerprint)
        ON CONFLICT (client_id, idempotency_key) DO UPDATE
            SET order_id = EXCLUDED.order_id,
                request_fingerprint = EXCLUDED.request_fingerprint,
                created_at = now(), updated_at = now()
            WHERE k.created_at <= now() - make_interval(secs => p_retention_seconds);
        IF NOT FOUND THEN
            RETURN QUERY
            SELECT false, v, k.request_fingerprint
            FROM idempotency_keys k JOIN api_order_view v ON v.id = k.order_id
            WHERE k.client_id = owner AND k.idempotency_key = p_idempotency_key
              AND k.created_at > now() - make_interval(secs => p_retention_seconds);
            RETURN;
        END IF;
    END IF;
    INSERT INTO orders (id, order_type, side, instrument, limit_price, quantity,
                        request_fingerprint, client_id, expires_at)
    VALUES (p_id, p_order_type, p_side, p_instrument, p_limit_price, p_quantity,
            p_fingerprint, owner, p_expires_at);
    INSERT INTO order_events (order_id, from_status, to_status, reason, attempt)
    VALUES (p_id, NULL, 'pending', 'order accepted', 0);
    RETURN QUERY SELECT true, v, NULL::text FROM api_order_view v WHERE v.id = p_id;
END
$$;

-- `GET /orders/{id}`: the admission, and the client's order under it (null when the request is
-- refused or the order is not the client's).
CREATE FUNCTION api_order(p_key_id text, p_key_hash bytea, p_id uuid)
RETURNS TABLE (verdict admission_verdict, order_row api_order_view)
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
    SELECT adm, v FROM (SELECT) one
    LEFT JOIN api_order_view v
           ON adm.adm_ok AND v.id = p_id AND v.client_id = adm.adm_client_id;
END
$$;

-- `GET /orders/{id}/events`: the admission, and one row per event of the client's order, in
-- order (one row without an event when the request is refused, the order is not the client's or
-- it has none; `order_id` says whether the order was found).
CREATE FUNCTION api_order_events(p_key_id text, p_key_hash bytea, p_id uuid)
RETURNS TABLE (
    verdict admission_verdict, order_id uuid, from_status text, to_status text, reason text,
    attempt integer, event_at timestamptz
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
    SELECT adm, o.id, e.from_status, e.to_status, e.reason, e.attempt, e.created_at
    FROM (SELECT) one
    LEFT JOIN orders o ON adm.adm_ok AND o.id = p_id AND o.client_id = adm.adm_client_id
    LEFT JOIN order_events e ON e.order_id = o.id
    ORDER BY e.id;
END
$$;

-- `GET /orders`: the admission, and a page of the client's orders, newest first, optionally of
-- one status and before an id (`p_fetch` rows at most; one row without an order when there are
-- none or the request is refused). One static statement per filter combination, so each keeps a
-- plan on the index that serves it.
CREATE FUNCTION api_orders(
    p_key_id text, p_key_hash bytea, p_fetch bigint, p_status text, p_before uuid
)
RETURNS TABLE (verdict admission_verdict, order_row api_order_view)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    adm admission_verdict;
BEGIN
    SELECT * INTO adm FROM api_admission(p_key_id, p_key_hash, false);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF adm.adm_ok THEN
        IF p_status IS NULL AND p_before IS NULL THEN
            RETURN QUERY SELECT adm, v FROM api_order_view v
            WHERE v.client_id = adm.adm_client_id
            ORDER BY v.id DESC LIMIT p_fetch;
        ELSIF p_before IS NULL THEN
            RETURN QUERY SELECT adm, v FROM api_order_view v
            WHERE v.client_id = adm.adm_client_id AND v.status = p_status
            ORDER BY v.id DESC LIMIT p_fetch;
        ELSIF p_status IS NULL THEN
            RETURN QUERY SELECT adm, v FROM api_order_view v
            WHERE v.client_id = adm.adm_client_id AND v.id < p_before
            ORDER BY v.id DESC LIMIT p_fetch;
        ELSE
            RETURN QUERY SELECT adm, v FROM api_order_view v
            WHERE v.client_id = adm.adm_client_id AND v.status = p_status AND v.id < p_before
            ORDER BY v.id DESC LIMIT p_fetch;
        END IF;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT adm, NULL::api_order_view;
END
$$;
