#!/usr/bin/env bash
# The local system in the foreground: services, database, then the local runner.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/start-services.sh"

DB_NAME="${DATABASE_URL##*/}"
DB_NAME="${DB_NAME%%\?*}"
if ! psql "$TEST_ADMIN_DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
  psql "$TEST_ADMIN_DATABASE_URL" -qc "CREATE DATABASE \"$DB_NAME\""
fi

cd "$ROOT"
exec cargo run --quiet -p local-runner
