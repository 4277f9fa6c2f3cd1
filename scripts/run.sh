#!/usr/bin/env bash
# The local system in the foreground: services, database, then the local runner.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# The runner embeds its own SQS endpoint, so moto (Python) starts only when asked for:
# START_MOTO=1, or SQS_ENDPOINT=external with AWS_ENDPOINT_URL at moto (env.sh's default).
if [[ "${START_MOTO:-0}" == 1 || ( "${SQS_ENDPOINT:-embedded}" == external \
      && "$AWS_ENDPOINT_URL" == "http://127.0.0.1:$MOTO_PORT" ) ]]; then
  "$ROOT/scripts/start-services.sh"
else
  wait_for_postgres
fi

# LOCAL_DB_VIA=pgbouncer: the runner's functions connect through PgBouncer (transaction pooling,
# the local stand-in for RDS Proxy; started here), its migrations directly (MIGRATION_DATABASE_URL).
# DATABASE_URL keeps naming the Postgres database; the runner gets the same user and database on
# PgBouncer's address, which forwards to $PGHOST_ADDR:$PGPORT_NUM.
case "${LOCAL_DB_VIA:-direct}" in
  direct) ;;
  pgbouncer)
    "$ROOT/scripts/start-pgbouncer.sh"
    export MIGRATION_DATABASE_URL="${MIGRATION_DATABASE_URL:-$DATABASE_URL}"
    REST="${DATABASE_URL#*://}"
    USERINFO=""
    if [[ "$REST" == *@* ]]; then USERINFO="${REST%@*}@"; REST="${REST##*@}"; fi
    export DATABASE_URL="postgres://${USERINFO}127.0.0.1:$PGBOUNCER_PORT/${REST#*/}"
    echo "database through PgBouncer on 127.0.0.1:$PGBOUNCER_PORT (migrations direct)"
    ;;
  *)
    echo "error: LOCAL_DB_VIA=$LOCAL_DB_VIA: expected \`pgbouncer\` or \`direct\`" >&2
    exit 1
    ;;
esac

DB_NAME="${DATABASE_URL##*/}"
DB_NAME="${DB_NAME%%\?*}"
if ! psql "$TEST_ADMIN_DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
  psql "$TEST_ADMIN_DATABASE_URL" -qc "CREATE DATABASE \"$DB_NAME\""
fi

# A local API key for client `local`, made once and kept in .local/api-key, so that curl works
# right away: curl -H "Authorization: Bearer $(cat .local/api-key)" http://127.0.0.1:3000/orders
if [[ -z "${LOCAL_API_KEY:-}" ]]; then
  mkdir -p "$LOCAL_DIR"
  if [[ ! -s "$LOCAL_DIR/api-key" ]]; then
    (umask 077; echo "sok_$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')_$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$LOCAL_DIR/api-key")
  fi
  LOCAL_API_KEY="$(cat "$LOCAL_DIR/api-key")"
  export LOCAL_API_KEY
  echo "API key for client 'local' in $LOCAL_DIR/api-key"
fi

cd "$ROOT"
exec cargo run --quiet -p local-runner
