#!/usr/bin/env bash
# Every test in the workspace against real Postgres (through PgBouncer where the functions
# connect) and a real moto server.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/start-services.sh"
cd "$ROOT"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest ..."
  cargo install --locked cargo-nextest
fi
# Build the binaries first: the end-to-end test starts the local runner through the run command.
cargo build --workspace --bins
STATUS=0
# The OpenAPI document against the server (schemathesis, every check, its own runner and
# database; see the script). Before the suites, so that their summary stays the closing lines;
# a filtered run (arguments) skips it.
if [[ $# -eq 0 ]]; then
  SCHEMATHESIS_SKIP_BUILD=1 "$ROOT/scripts/schemathesis.sh" || STATUS=1
fi
# nextest runs the test binaries without holding cargo's build lock, which the run command needs.
# The SQS conformance suite inside runs against the embedded endpoint; below, against moto.
SQS_CONFORMANCE_ENDPOINT="http://127.0.0.1:$MOTO_PORT" \
  cargo nextest run -p sqs-local --test conformance --no-fail-fast
# The functions' connections in the api, pipeline, sweeper, security and end-to-end suites go
# through PgBouncer in transaction pooling mode (4 server connections per database, fewer than
# their pools' clients), so that session state fails a test; TEST_DATABASE_VIA=direct connects
# them straight to Postgres. Databases are created and migrated directly, as is the migrator suite.
export TEST_DATABASE_VIA="${TEST_DATABASE_VIA:-pgbouncer}"
# Runner logs of this run only: the secrets check below searches them.
export TEST_LOG_DIR="$LOCAL_DIR/test-logs"
rm -rf "$TEST_LOG_DIR"
mkdir -p "$TEST_LOG_DIR"
cargo nextest run --workspace --no-fail-fast "$@" || STATUS=$?
# Only a full run has the logs the check expects; a filtered run (arguments) skips it.
if [[ $# -eq 0 ]]; then
  "$ROOT/scripts/check-logs-for-secrets.sh" "$TEST_LOG_DIR" || STATUS=1
fi
exit $STATUS
