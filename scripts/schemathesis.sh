#!/usr/bin/env bash
# schemathesis (PyPI, pinned in scripts/requirements-schemathesis.txt) against the local runner:
# does the server do what its OpenAPI document (GET /openapi.json) says? Part of `make test`;
# runs alone too: `./scripts/schemathesis.sh` (needs Postgres, Rust and Python 3 with venv).
#
# A fresh database, a local runner on free ports (the api, its embedded SQS endpoint and the
# exchange simulator behind it), an API key made with `orders-admin`; then every check
# (`--checks all`) in every phase (examples, coverage, fuzzing and the stateful phase, which
# follows the document's links from POST /orders to GET/DELETE /orders/{id} and its events):
# SCHEMATHESIS_MAX_EXAMPLES generated cases per operation and phase, then fuzzing and stateful
# rounds again until SCHEMATHESIS_MAX_TIME is spent (2 minutes: 6 000+ requests on 2 cores; the
# whole step with its setup takes a little over 2 minutes). Schemathesis prints its summary;
# scripts/schemathesis/summary.py then prints the requests and statuses per operation and fails
# if an operation with inputs got fewer than SCHEMATHESIS_MIN_REQUESTS.
#
# No check is disabled (max_response_time is on too, at 5 s). What is excluded, each in scripts/schemathesis/hooks.py, one line each:
#  - POST /orders bodies generated as valid get a correct ISIN check digit: a pattern can't state it.
#  - ... their `expires_at` is moved into (now, now + 30 days]: a schema can't compare with the clock.
#  - ... their float `limit_price` is cut to 2 places and a decimal string's value put in range:
#    `multipleOf: 0.01` is float-tolerant and a pattern can't bound a value.
#  - ... their integral float `quantity` (`277.0`) is sent as `277`: JSON Schema's `integer` admits
#    `277.0`, which the server refuses by design (README "Input rules").
#  - positive_data_acceptance (ST202): a 422 whose only error is "Idempotency-Key was already used
#    with a different order" is dropped: that depends on earlier requests, as documented.
#  - use_after_free (ST301): dropped only when the read after the DELETE shows the order
#    `canceled`, or a cancel requested at the exchange (`pending_cancel`, then `canceled`,
#    `filled` or `expired`): DELETE /orders/{id} cancels and the order stays readable (README).
# Bodies generated to be invalid are never changed, so negative_data_rejection sees them all.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES=N   cases per operation and phase (default 300)
#   SCHEMATHESIS_MIN_REQUESTS=N   least requests per operation with inputs (default 300)
#   SCHEMATHESIS_MAX_TIME=S       the run's time budget in seconds (default 120)
#   SCHEMATHESIS_SEED=N|random    default: a fixed seed, so that each run starts with the same cases
#   SCHEMATHESIS_VENV=DIR         default .local/schemathesis-venv
#   SCHEMATHESIS_SKIP_BUILD=1     use the debug binaries as built (scripts/test.sh has just built them)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
START=$SECONDS

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
MIN_REQUESTS="${SCHEMATHESIS_MIN_REQUESTS:-300}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"
# max_response_time, the one check `--checks all` leaves off without a limit: a debug build answers
# in milliseconds, so 5 s only catches a request that hangs (the enqueue is bounded at 1 s).
MAX_RESPONSE_TIME="${SCHEMATHESIS_MAX_RESPONSE_TIME:-5}"
SEED="${SCHEMATHESIS_SEED:-20261206}"
VENV="${SCHEMATHESIS_VENV:-$LOCAL_DIR/schemathesis-venv}"
REQS="$ROOT/scripts/requirements-schemathesis.txt"
CONFIG_DIR="$ROOT/scripts/schemathesis"
WORK="$LOCAL_DIR/schemathesis"

# --- the tool: its own virtualenv with the pinned set, (re)installed only when the file changed --
if [[ ! -x "$VENV/bin/schemathesis" ]] || ! cmp -s "$REQS" "$VENV/.installed-requirements"; then
  echo "installing schemathesis into $VENV (once; about half a minute) ..."
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  "$VENV/bin/pip" check
  cp "$REQS" "$VENV/.installed-requirements"
fi
"$VENV/bin/schemathesis" --version

# --- the system under test ----------------------------------------------------------------------
wait_for_postgres
if [[ "${SCHEMATHESIS_SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --quiet -p local-runner -p admin
fi
rm -rf "$WORK"
mkdir -p "$WORK"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
API_PORT="$(free_port)"
API="http://127.0.0.1:$API_PORT"
DB_NAME="schemathesis_$(date +%s)_$$"
RUN_DATABASE_URL="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/$DB_NAME"
RUNNER_PID=""
cleanup() {
  if [[ -n "$RUNNER_PID" ]]; then
    kill "$RUNNER_PID" 2>/dev/null || true
    wait "$RUNNER_PID" 2>/dev/null || true
  fi
  psql "$TEST_ADMIN_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" || true
}
trap cleanup EXIT
psql "$TEST_ADMIN_DATABASE_URL" -qc "CREATE DATABASE \"$DB_NAME\""

# The exchange simulator (in the runner's process) and the embedded SQS endpoint on any free
# port; alerts stay in their inbox queue instead of the log.
DATABASE_URL="$RUN_DATABASE_URL" LISTEN_ADDR="127.0.0.1:$API_PORT" UPDATES_LISTEN_ADDR=127.0.0.1:0 \
  EXCHANGE_SIM_LISTEN=127.0.0.1:0 SQS_LOCAL_LISTEN=127.0.0.1:0 PRINT_ALERTS=false \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$ROOT/target/debug/local-runner" >"$WORK/local-runner.log" 2>&1 &
RUNNER_PID=$!
for _ in $(seq 1 120); do
  if curl -sf "$API/health" >/dev/null; then break; fi
  if ! kill -0 "$RUNNER_PID" 2>/dev/null; then
    echo "error: the local runner exited; its log:" >&2
    cat "$WORK/local-runner.log" >&2
    exit 1
  fi
  sleep 0.5
done
curl -sf "$API/health" >/dev/null

# A key of the run's own client, made as an operator would (README "API keys"); its limits are
# raised so that the default 50 requests/s do not answer most generated requests with 429.
KEY="$(DATABASE_URL="$RUN_DATABASE_URL" "$ROOT/target/debug/orders-admin" keys create \
  --client schemathesis --label "scripts/schemathesis.sh" | grep -E '^sok_')"
DATABASE_URL="$RUN_DATABASE_URL" "$ROOT/target/debug/orders-admin" clients set schemathesis \
  --requests-per-second 1000000 --max-open-orders 1000000 >/dev/null
# The document as the server serves it (with the key, whether or not /openapi.json needs one).
curl -sf -H "Authorization: Bearer $KEY" "$API/openapi.json" >"$WORK/openapi.json"

# --- the run ------------------------------------------------------------------------------------
SEED_ARGS=(--seed "$SEED")
if [[ "$SEED" == random ]]; then SEED_ARGS=(); fi
STATUS=0
(
  cd "$WORK" # its .hypothesis and cache directories stay in the run's work directory
  SCHEMATHESIS_API_KEY="$KEY" SCHEMATHESIS_HOOKS="$CONFIG_DIR/hooks.py" \
    "$VENV/bin/schemathesis" --config-file "$CONFIG_DIR/schemathesis.toml" run "$WORK/openapi.json" \
    --url "$API" \
    --checks all \
    --max-response-time "$MAX_RESPONSE_TIME" \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    "${SEED_ARGS[@]}" \
    --generation-database none \
    --no-color \
    --report ndjson --report-ndjson-path "$WORK/report.ndjson"
) || STATUS=$?

echo
echo "requests per operation (from $WORK/report.ndjson):"
python3 "$CONFIG_DIR/summary.py" "$WORK/report.ndjson" "$WORK/openapi.json" "$MIN_REQUESTS" || STATUS=1
echo "schemathesis step: $((SECONDS - START)) s (exit $STATUS)"
exit $STATUS
