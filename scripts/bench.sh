#!/usr/bin/env bash
# Benchmarks (on demand, not in CI): release build, then
#   1. POST /orders with wrk at 1/16/64/256 connections (placement off, so the api is measured),
#      directly and through a PgBouncer of the benchmark's own (transaction pooling, 8 server
#      connections); with BENCH_OLD_BIN (or BENCH_OLD_REV) the code before a change too, old and
#      new taking turns; the CPU split at 64; then the round trips and statements per request,
#      counted (a throwaway cluster with pg_stat_statements and a counting proxy)
#   2. the floor: pgbench inserting the same row at the same client counts, and its CPU split
#   3. placement throughput through the simulated exchange (500 ms, 10 % failures)
#   4. cold start and peak RSS of the Lambda binaries under a Runtime API emulator
#   5. bootstrap sizes, then the SVG plots.
# Results: bench/results/*.json and *.svg; the numbers are copied into docs/BENCHMARKS.md.
# Knobs: BENCH_SECONDS (10), BENCH_RUNS (3), BENCH_SECTIONS ("1 2 3 4 5"),
#   BENCH_CONNECTIONS (1,16,64,256), BENCH_FLOOR_CLIENTS (1,16,64), BENCH_VIA ("direct pgbouncer"),
#   BENCH_PGBOUNCER_POOL (8), BENCH_OLD_BIN (release binaries of the old code, e.g.
#   /work/target-bench-old/release), BENCH_OLD_REV (a commit: built in a worktree of its own with
#   its own target dir, BENCH_OLD_WORKTREE / BENCH_OLD_TARGET), BENCH_STATEMENT_REQUESTS (1000),
#   BENCH_QUIET_SECONDS (30: no rustc or cargo for that long before measuring),
#   BENCH_QUIET_MAX_MINUTES (20: then measure anyway, and say so), BENCH_ORDERS (2000),
#   API_REQUESTS (100000), BENCH_OUT (bench/results).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/start-services.sh"   # Postgres check, PgBouncer (the template of ours), moto (SNS for the alerter's cold start)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
RUNS="${BENCH_RUNS:-3}"
SECTIONS=" ${BENCH_SECTIONS:-1 2 3 4 5} "
CONNECTIONS="${BENCH_CONNECTIONS:-1,16,64,256}"
FLOOR_CLIENTS="${BENCH_FLOOR_CLIENTS:-1,16,64}"
VIAS="${BENCH_VIA:-direct pgbouncer}"
OUT="${BENCH_OUT:-bench/results}"
mkdir -p "$OUT" "$LOCAL_DIR/bench"
section() { [[ "$SECTIONS" == *" $1 "* ]]; }
# wrk at 256 connections, PgBouncer with as many clients, the runners' sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== building release binaries"
PACKAGES=(-p local-runner -p sqs-local -p exchange-sim -p bench)
if section 4 || section 5; then PACKAGES+=(-p api -p sweeper -p placer -p alerter -p migrator); fi
cargo build --release "${PACKAGES[@]}"
BIN=target/release

# The code before a change, for the side-by-side tables: its own worktree and target dir (a
# shared target dir would mix the two builds' artifacts).
OLD_BIN="${BENCH_OLD_BIN:-}"
if [[ -z "$OLD_BIN" && -n "${BENCH_OLD_REV:-}" ]]; then
  OLD_TREE="${BENCH_OLD_WORKTREE:-$ROOT/../bench-old}"
  OLD_TARGET="${BENCH_OLD_TARGET:-$ROOT/../target-bench-old}"
  if [[ ! -d "$OLD_TREE" ]]; then git -C "$ROOT" worktree add "$OLD_TREE" "$BENCH_OLD_REV"; fi
  if [[ "$(git -C "$OLD_TREE" rev-parse HEAD)" != "$(git -C "$ROOT" rev-parse "$BENCH_OLD_REV^{commit}")" ]]; then
    echo "error: $OLD_TREE is not at $BENCH_OLD_REV" >&2; exit 1
  fi
  echo "== building the old code ($BENCH_OLD_REV) in $OLD_TREE"
  (cd "$OLD_TREE" && CARGO_TARGET_DIR="$OLD_TARGET" cargo build --release -p local-runner)
  OLD_BIN="$OLD_TARGET/release"
fi
VERSIONS=(new)
if [[ -n "$OLD_BIN" ]]; then
  [[ -x "$OLD_BIN/local-runner" ]] || { echo "error: no $OLD_BIN/local-runner" >&2; exit 1; }
  VERSIONS=(old new)
fi
bin_of() { if [[ "$1" == old ]]; then echo "$OLD_BIN"; else echo "$BIN"; fi; }

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
# $1 = database, $2 = placer pollers, $3 = binaries (default: the new build), $4 = direct or
# pgbouncer (the benchmark's own, started below; migrations then still run directly).
start_runner() {
  local db_url="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/$1" via_url
  via_url="$db_url"
  if [[ "${4:-direct}" == pgbouncer ]]; then
    # Migrated over a direct connection first: the old runner cannot be told to migrate
    # directly (MIGRATION_DATABASE_URL is newer), and refinery's statements are named ones.
    start_runner "$1" 0 "${3:-$BIN}" direct; kill "$RUNNER"; wait "$RUNNER" 2>/dev/null || true
    via_url="postgres://$PGUSER_NAME@127.0.0.1:$BENCH_PGBOUNCER_PORT/$1"
  fi
  API_PORT=$(free_port)
  LOCAL_API_KEY="$BENCH_API_KEY" LOCAL_CLIENT_ID=bench LOCAL_REQUESTS_PER_SECOND=1000000 LOCAL_MAX_OPEN_ORDERS=1000000000 \
  LISTEN_ADDR=127.0.0.1:$API_PORT UPDATES_LISTEN_ADDR=127.0.0.1:0 DATABASE_URL="$via_url" MIGRATION_DATABASE_URL="$db_url" \
  SQS_ENDPOINT=external AWS_ENDPOINT_URL=http://127.0.0.1:$SQS_PORT ALERT_SINK=queue \
  ORDERS_QUEUE_NAME="orders-$1" ORDERS_DLQ_NAME="orders-dlq-$1" ALERTS_INBOX_QUEUE_NAME="alerts-$1" \
  EXCHANGE_BASE_URL=http://127.0.0.1:$EX_PORT PLACER_POLLERS="$2" PLACER_CONCURRENCY=10 POLL_WAIT_SECONDS=1 \
  RUST_LOG=warn "${3:-$BIN}/local-runner" >"$LOCAL_DIR/bench/runner-$1.log" 2>&1 & RUNNER=$!; PIDS+=($RUNNER)
  wait_ok "http://127.0.0.1:$API_PORT/health"
}

# The benchmark's own PgBouncer: the project's (scripts/start-pgbouncer.sh wrote its config, the
# template here) with BENCH_PGBOUNCER_POOL server connections per database and a port of its
# own, so that the one on $PGBOUNCER_PORT, which the tests use, is left alone.
start_bench_pgbouncer() {
  local dir="$LOCAL_DIR/bench/pgbouncer" template="$LOCAL_DIR/pgbouncer/pgbouncer.ini"
  local pool="${BENCH_PGBOUNCER_POOL:-8}" as_user=()
  mkdir -p "$dir"
  BENCH_PGBOUNCER_PORT=$(free_port)
  { echo "; scripts/bench.sh: a copy of $template, listen_port and default_pool_size changed"
    sed -e "s/^listen_port = .*/listen_port = $BENCH_PGBOUNCER_PORT/" \
        -e "s/^default_pool_size = .*/default_pool_size = $pool/" "$template"; } >"$dir/pgbouncer.ini"
  grep -q "^default_pool_size = $pool\$" "$dir/pgbouncer.ini" || { echo "error: no default_pool_size in $template" >&2; exit 1; }
  if [[ "$(id -u)" == 0 ]]; then as_user=(-u "${PGBOUNCER_OS_USER:-postgres}"); fi
  "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" "${as_user[@]}" "$dir/pgbouncer.ini" >"$LOCAL_DIR/bench/pgbouncer.log" 2>&1 &
  BENCH_PGBOUNCER_PID=$!; PIDS+=($BENCH_PGBOUNCER_PID)
  for _ in $(seq 1 40); do
    psql -h 127.0.0.1 -p "$BENCH_PGBOUNCER_PORT" -U "$PGUSER_NAME" -d postgres -XAtqc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.25
  done
  echo "pgbouncer for the benchmark on 127.0.0.1:$BENCH_PGBOUNCER_PORT: $(psql -h 127.0.0.1 -p "$BENCH_PGBOUNCER_PORT" \
    -U "$PGUSER_NAME" -d pgbouncer -XAtc 'SHOW CONFIG' | grep -E '^(pool_mode|default_pool_size)\|' | cut -d'|' -f1,2 | tr '\n' ' ')"
}

# What the runner logged as errors during a run, by kind (the old code's named statements fail
# behind transaction pooling: `prepared statement "s3" does not exist`).
error_kinds() { python3 scripts/bench/error_kinds.py "$1"; }

# Other engineers' builds distort every figure: wait until no rustc or cargo has run for
# BENCH_QUIET_SECONDS, at most BENCH_QUIET_MAX_MINUTES, then measure anyway and say so.
wait_quiet() {
  local need="${BENCH_QUIET_SECONDS:-30}" max=$(( ${BENCH_QUIET_MAX_MINUTES:-20} * 60 )) quiet=0 waited=0
  while (( quiet < need )); do
    if (( waited >= max )); then
      echo "== NOT QUIET: rustc/cargo still running after $(( max / 60 )) min; measuring anyway"
      QUIET="no (busy after $(( max / 60 )) min)"; return
    fi
    if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then quiet=0; else quiet=$(( quiet + 5 )); fi
    sleep 5; waited=$(( waited + 5 ))
  done
  QUIET="yes (after ${waited} s)"
}

wait_quiet
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); profile: release; synchronous_commit: $(psql "$TEST_ADMIN_DATABASE_URL" -tAc 'SHOW synchronous_commit')"
echo "== quiet: $QUIET; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "== busiest processes at the start (%CPU over their lifetime):"; ps -eo pcpu,ni,comm --sort=-pcpu | head -6
echo "== new: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . ':!docs' ':!bench' ':!scripts/bench*' || echo ' (+ uncommitted changes outside docs/ and the bench)') in $BIN${OLD_BIN:+; old: ${BENCH_OLD_REV:-?} in $OLD_BIN}"

if section 1; then
  echo "== 1. POST /orders (api only: PLACER_POLLERS=0): ${VERSIONS[*]}, via: $VIAS"
  if [[ "$VIAS" == *pgbouncer* ]]; then start_bench_pgbouncer; fi
  for via in $VIAS; do
    TARGETS=(); declare -A RUNNER_OF=() PORT_OF=()
    for v in "${VERSIONS[@]}"; do
      fresh_db "bench_post_${v}_$via"
      start_runner "bench_post_${v}_$via" 0 "$(bin_of "$v")" "$via"
      TARGETS+=(--target "$v-$via=http://127.0.0.1:$API_PORT"); RUNNER_OF[$v]=$RUNNER; PORT_OF[$v]=$API_PORT
    done
    "$BIN/load-bench" --out-dir "$OUT" post "${TARGETS[@]}" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN" \
      --runs "$RUNS" --name "post-$via"
    for v in "${VERSIONS[@]}"; do
      echo "-- errors the $v runner logged ($via):"; error_kinds "$LOCAL_DIR/bench/runner-bench_post_${v}_$via.log"
    done
    echo "-- where the CPU goes at 64 connections ($via; one more run each)"
    for v in "${VERSIONS[@]}"; do
      if [[ "$via" == pgbouncer && "$v" == old ]]; then continue; fi   # its errors, not its cost
      labels=(--label "${RUNNER_OF[$v]}=local-runner ($v)")
      for other in "${VERSIONS[@]}"; do
        if [[ "$other" != "$v" ]]; then labels+=(--label "${RUNNER_OF[$other]}=local-runner ($other, idle)"); fi
      done
      if [[ "$via" == pgbouncer ]]; then labels+=(--label "$BENCH_PGBOUNCER_PID=pgbouncer (benchmark's)"); fi
      python3 scripts/bench/cpu_split.py "${labels[@]}" --postgres-db "bench_post_${v}_$via" --units "$LOCAL_DIR/bench/cpu-split/post-$v-$via.json:accepted" \
        --json "$OUT/cpu-split-post-$v-$via-64.json" -- \
        "$BIN/load-bench" --out-dir "$LOCAL_DIR/bench/cpu-split" post --target "$v-$via=http://127.0.0.1:${PORT_OF[$v]}" \
        --connections 64 --seconds "$SECONDS_PER_RUN" --runs 1 --name "post-$v-$via"
    done
    for v in "${VERSIONS[@]}"; do kill "${RUNNER_OF[$v]}"; done
  done
fi

if section 2; then
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
  FLOOR_URL="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_floor"
  "$BIN/load-bench" --out-dir "$OUT" floor --database-url "$FLOOR_URL" --clients "$FLOOR_CLIENTS" --seconds "$SECONDS_PER_RUN" --runs "$RUNS"
  echo "-- where the CPU goes at 64 clients (one more run; per insert transaction)"
  python3 scripts/bench/cpu_split.py --postgres-db bench_floor --units "$LOCAL_DIR/bench/cpu-split/floor.json:transactions" \
    --json "$OUT/cpu-split-floor-64.json" -- \
    "$BIN/load-bench" --out-dir "$LOCAL_DIR/bench/cpu-split" floor --database-url "$FLOOR_URL" \
    --clients 64 --seconds "$SECONDS_PER_RUN" --runs 1
  if [[ "$VIAS" == *pgbouncer* ]]; then
    [[ -n "${BENCH_PGBOUNCER_PORT:-}" ]] || start_bench_pgbouncer
    echo "-- the floor through the benchmark's PgBouncer (pgbench's simple protocol)"
    "$BIN/load-bench" --out-dir "$OUT" floor --database-url "postgres://$PGUSER_NAME@127.0.0.1:$BENCH_PGBOUNCER_PORT/bench_floor" \
      --clients 16,64,256 --seconds "$SECONDS_PER_RUN" --runs "$RUNS" --name floor-pgbouncer
  fi
fi

if section 1; then
  echo "== 1c. round trips and statements per request, counted (${VERSIONS[*]})"
  STATEMENT_RUNNERS=()
  for v in "${VERSIONS[@]}"; do STATEMENT_RUNNERS+=(--runner "$v=$(bin_of "$v")/local-runner"); done
  "$BIN/load-bench" --out-dir "$OUT" statements "${STATEMENT_RUNNERS[@]}" --requests "${BENCH_STATEMENT_REQUESTS:-1000}" \
    --sqs-url "http://127.0.0.1:$SQS_PORT" --exchange-url "http://127.0.0.1:$EX_PORT" \
    --work-dir "$LOCAL_DIR/bench/statements"
fi

if section 3; then
echo "== 3. placements (4 pollers × 10 in flight = 40 exchange calls at 500 ms, 10 % failures)"
fresh_db bench_place
start_runner bench_place 4
"$BIN/load-bench" --out-dir "$OUT" placements --url "http://127.0.0.1:$API_PORT" \
  --database-url "postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_place" \
  --orders "${BENCH_ORDERS:-2000}" --in-flight 40 --latency-seconds 0.5 --failure-rate 0.1
kill "$RUNNER"
fi

if section 4; then
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
# With old functions beside the old runner (BENCH_OLD_BIN built with -p api -p placer …), both
# take turns: old, new, old, new. Each round starts from a fresh database migrated by its own
# code's runner: the sweeper's first event scans the pending orders, and the api's 20 000
# requests of the round before would otherwise be in its way (run E measured that by accident).
COLD_VERSIONS=(new)
if [[ -n "$OLD_BIN" && -x "$OLD_BIN/api" ]]; then COLD_VERSIONS=(old new old new); fi
ROUND=0
for version in "${COLD_VERSIONS[@]}"; do
  ROUND=$((ROUND + 1))
  echo "-- cold start, $version code (round $ROUND of ${#COLD_VERSIONS[@]})"
  fresh_db bench_cold
  start_runner bench_cold 0 "$(bin_of "$version")"; kill "$RUNNER"; wait "$RUNNER" 2>/dev/null || true
  DATABASE_URL="postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/bench_cold" ORDERS_QUEUE_URL="$QUEUE_URL" \
    ALERT_TOPIC_ARN="$TOPIC_ARN" EXCHANGE_BASE_URL="http://127.0.0.1:$EX_PORT" \
    AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$SQS_PORT" \
    "$BIN/cold-start" --bin-dir "$(bin_of "$version")" --runs 5 --api-requests "${API_REQUESTS:-100000}" \
    --out "$OUT/cold-start-$version-$ROUND.json"
done
fi

if section 5; then
echo "== 5. binary sizes (stripped release, $(uname -m))"
for f in api placer alerter sweeper migrator; do
  awk -v n="$f" -v b="$(stat -c %s "$BIN/$f")" 'BEGIN { printf "%-10s %8.1f MiB\n", n, b / 1048576 }'
done
if [[ -d .aws-sam/build ]]; then
  echo "sam build bootstraps:"; find .aws-sam/build -name bootstrap -exec ls -l {} \; -exec file {} \;
fi
fi

"$BIN/load-bench" --out-dir "$OUT" plot
