-- Bound every statement of the application's sessions: a held lock or a runaway query must turn
-- into a fast error (a 500 or a retried message), not a request that waits forever. Set on the
-- database rather than in the connection string because RDS Proxy does not pass startup options.
-- A migration that needs longer sets `SET LOCAL statement_timeout` itself.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '5s');
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   current_database(), '15s');
END
$$;
