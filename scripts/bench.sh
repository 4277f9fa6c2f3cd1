#!/usr/bin/env bash
# Benchmarks (on demand, not in CI): release build, then
#   1. POST /orders with wrk at 1/16/64 connections (placement off, so the api is measured)
#   2. the floor: pgbench inserting the same row at the same client counts
#   3. placement throughput through the simulated exchange (500 ms, 10 % failures)
#   4. cold start and peak RSS of the Lambda binaries under a Runtime API emulator
#   5. bootstrap sizes, then the SVG plots.
# Results: bench/results/*.json and *.svg; the numbers are copied into docs/BENCHMARKS.md.
# Knobs: BENCH_SECONDS (10), BENCH_RUNS (3), BENCH_ORDERS (2000), API_REQUESTS (100000).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/start-services.sh"   # Postgres check + moto (SNS for the alerter's cold start)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
RUNS="${BENCH_RUNS:-3}"
OUT=bench/results
mkdir -p "$OUT" "$LOCAL_DIR/bench"

echo "== building release binaries"
cargo build --release -p local-runner -p sqs-local -p exchange-sim -p api -p sweeper -p placer -p alerter -p migrator -p bench
BIN=target/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_ok() { for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

fresh_db() {
  psql "$TEST_ADMIN_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $1" -qc "CREATE DATABASE $1"
}

SQS_PORT=$(free_port); EX_PORT=$(free_port)
SQS_LOCAL_LISTEN=127.0.0.1:$SQS_PORT RUST_LOG=warn "$BIN/sqs-local" >"$LOCAL_DIR/bench/sqs-local.log" 2>&1 & PIDS+=($!)
EXCHANGE_SIM_LISTEN=127.0.0.1:$EX_PORT EXCHANGE_SIM_LATENCY_MS=500 EXCHANGE_SIM_FAILURE_RATE=0.1 RUST_LOG=warn \
  "$BIN/exchange-sim" >"$LOCAL_DIR/bench/exchange.log" 2>&1 & PIDS+=($!)
wait_ok "http://127.0.0.1:$EX_PORT/health"

# The benchmark's client: its key is registered by the runner (LOCAL_API_KEY) with limits far
# above any load here, so authentication and the limit bookkeeping are measured, not the limits.
BENCH_API_KEY="sok_$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')_$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export BENCH_API_KEY
start_runner() { # $1 = database, $2 = placer pollers
  API_PORT=$(free_port)
  LOCAL_API_KEY="$BENCH_API_KEY" LOCAL_CLIENT_ID=bench LOCAL_REQUESTS_PER_SECOND=1000000 LOCAL_MAX_OPEN_ORDERS=1000000000 \
  LISTEN_ADDR=127.0.0.1:$API_PORT DATABASE_URL="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/$1" \
  SQS_ENDPOINT=external AWS_ENDPOINT_URL=http://127.0.0.1:$SQS_PORT ALERT_SINK=queue \
  ORDERS_QUEUE_NAME="orders-$1" ORDERS_DLQ_NAME="orders-dlq-$1" ALERTS_INBOX_QUEUE_NAME="alerts-$1" \
  EXCHANGE_BASE_URL=http://127.0.0.1:$EX_PORT PLACER_POLLERS="$2" PLACER_CONCURRENCY=10 POLL_WAIT_SECONDS=1 \
  RUST_LOG=warn "$BIN/local-runner" >"$LOCAL_DIR/bench/runner-$1.log" 2>&1 & RUNNER=$!; PIDS+=($RUNNER)
  wait_ok "http://127.0.0.1:$API_PORT/health"
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); profile: release; synchronous_commit: $(psql "$TEST_ADMIN_DATABASE_URL" -tAc 'SHOW synchronous_commit')"

echo "== 1. POST /orders (api only: PLACER_POLLERS=0)"
fresh_db bench_post
start_runner bench_post 0
"$BIN/load-bench" post --url "http://127.0.0.1:$API_PORT" --seconds "$SECONDS_PER_RUN" --runs "$RUNS"
echo "-- where the CPU goes at 64 connections (one more run)"
python3 scripts/bench/cpu_split.py -- "$BIN/load-bench" --out-dir "$LOCAL_DIR/bench/cpu-split" post \
  --url "http://127.0.0.1:$API_PORT" --connections 64 --seconds "$SECONDS_PER_RUN" --runs 1
kill "$RUNNER"

echo "== 2. floor: pgbench (and the disk's own sync rate, which bounds a single committing client)"
PG_TEST_FSYNC=$(ls /usr/lib/postgresql/*/bin/pg_test_fsync 2>/dev/null | tail -1 || true)
if [[ -n "$PG_TEST_FSYNC" ]]; then
  (cd "$LOCAL_DIR/bench" && "$PG_TEST_FSYNC" -s 2 -f "$LOCAL_DIR/bench/fsync.tmp" 2>&1 \
    | grep -E "^ +fdatasync|^ +open_datasync" | head -2 | sed 's/^ */fsync: /')
  rm -f "$LOCAL_DIR/bench/fsync.tmp"
fi
fresh_db bench_floor
# The runner applies the migrations at start; stopped again before pgbench runs.
start_runner bench_floor 0; kill "$RUNNER"
"$BIN/load-bench" floor --database-url "postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_floor" --seconds "$SECONDS_PER_RUN" --runs "$RUNS"

echo "== 3. placements (4 pollers × 10 in flight = 40 exchange calls at 500 ms, 10 % failures)"
fresh_db bench_place
start_runner bench_place 4
"$BIN/load-bench" placements --url "http://127.0.0.1:$API_PORT" \
  --database-url "postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_place" \
  --orders "${BENCH_ORDERS:-2000}" --in-flight 40 --latency-seconds 0.5 --failure-rate 0.1
kill "$RUNNER"

echo "== 4. cold start and memory (Runtime API emulator)"
fresh_db bench_cold
start_runner bench_cold 0; kill "$RUNNER"
QUEUE_URL=$(AWS_ENDPOINT_URL=http://127.0.0.1:$SQS_PORT "$LOCAL_DIR/venv/bin/python" - <<PY
import boto3
c = boto3.client("sqs", endpoint_url="http://127.0.0.1:$SQS_PORT", region_name="us-east-1")
print(c.create_queue(QueueName="bench-cold")["QueueUrl"])
PY
)
TOPIC_ARN=$("$LOCAL_DIR/venv/bin/python" - <<PY
import boto3
c = boto3.client("sns", endpoint_url="$AWS_ENDPOINT_URL", region_name="us-east-1")
print(c.create_topic(Name="bench-alerts")["TopicArn"])
PY
)
DATABASE_URL="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_cold" ORDERS_QUEUE_URL="$QUEUE_URL" \
  ALERT_TOPIC_ARN="$TOPIC_ARN" EXCHANGE_BASE_URL="http://127.0.0.1:$EX_PORT" \
  AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$SQS_PORT" \
  "$BIN/cold-start" --bin-dir "$BIN" --runs 5 --api-requests "${API_REQUESTS:-100000}"

echo "== 5. binary sizes (stripped release, $(uname -m))"
for f in api placer alerter sweeper migrator; do
  awk -v n="$f" -v b="$(stat -c %s "$BIN/$f")" 'BEGIN { printf "%-10s %8.1f MiB\n", n, b / 1048576 }'
done
if [[ -d .aws-sam/build ]]; then
  echo "sam build bootstraps:"; find .aws-sam/build -name bootstrap -exec ls -l {} \; -exec file {} \;
fi

"$BIN/load-bench" plot
