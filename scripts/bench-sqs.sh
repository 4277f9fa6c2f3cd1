#!/usr/bin/env bash
# Throughput of the embedded SQS endpoint (the sqs-local binary, release build) and of moto,
# measured by the same client (tools/sqs-local/examples/sqs_bench.rs, aws-sdk-sqs, release)
# with the same workload: sequential and concurrent sends, sequential and concurrent
# receive+delete; the median of BENCH_RUNS runs. Results go in docs/SQS-LOCAL.md.
#
#   scripts/bench-sqs.sh
#
# Environment: BENCH_MESSAGES (300 per phase: moto slows down as a queue deepens),
# BENCH_CONCURRENCY (16), BENCH_RUNS (3), BENCH_DEEP_MESSAGES (5000: an extra sqs-local run with
# deeper queues; 0 skips it), BENCH_SKIP_MOTO=1 (sqs-local only).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

MESSAGES="${BENCH_MESSAGES:-300}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
RUNS="${BENCH_RUNS:-3}"
DEEP="${BENCH_DEEP_MESSAGES:-5000}"

echo "== building (release)"
cargo build --release --quiet -p sqs-local --bin sqs-local --example sqs_bench
BIN="$ROOT/target/release/sqs-local"
BENCH="$ROOT/target/release/examples/sqs_bench"

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
echo "== command: scripts/bench-sqs.sh (BENCH_MESSAGES=$MESSAGES BENCH_CONCURRENCY=$CONCURRENCY BENCH_RUNS=$RUNS BENCH_DEEP_MESSAGES=$DEEP)"

# sqs-local as its own process on a free port, like moto: it prints its endpoint URL first.
WORK="$(mktemp -d)"
SQS_LOCAL_LISTEN=127.0.0.1:0 "$BIN" >"$WORK/url" 2>"$WORK/log" &
SQS_LOCAL_PID=$!
trap 'kill "$SQS_LOCAL_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do
  [[ -s "$WORK/url" ]] && break
  sleep 0.1
done
SQS_LOCAL_URL="$(head -n1 "$WORK/url")"
[[ -n "$SQS_LOCAL_URL" ]] || { echo "sqs-local did not start:"; cat "$WORK/log"; exit 1; }

echo
echo "== sqs-local ($SQS_LOCAL_URL)"
"$BENCH" --endpoint "$SQS_LOCAL_URL" --label "sqs-local binary (release)" \
  --messages "$MESSAGES" --concurrency "$CONCURRENCY" --runs "$RUNS"
echo "   resident memory of sqs-local: $(awk '/VmRSS/{print $2, $3}' "/proc/$SQS_LOCAL_PID/status")"

if [[ "${BENCH_SKIP_MOTO:-0}" != 1 ]]; then
  MOTO_URL="http://127.0.0.1:$MOTO_PORT"
  if ! curl -fsS -o /dev/null "$MOTO_URL/moto-api/data.json" 2>/dev/null; then
    "$ROOT/scripts/start-services.sh"
  fi
  echo
  echo "== moto ($MOTO_URL)"
  "$BENCH" --endpoint "$MOTO_URL" --label "moto $(cat "$LOCAL_DIR/venv/.installed-requirements" 2>/dev/null | tr -d '\n')" \
    --messages "$MESSAGES" --concurrency "$CONCURRENCY" --runs "$RUNS"
fi

if [[ "$DEEP" != 0 ]]; then
  echo
  echo "== sqs-local, deeper queues ($DEEP messages per phase)"
  "$BENCH" --endpoint "$SQS_LOCAL_URL" --label "sqs-local binary (release)" \
    --messages "$DEEP" --concurrency "$CONCURRENCY" --runs "$RUNS"
  echo "   resident memory of sqs-local: $(awk '/VmRSS/{print $2, $3}' "/proc/$SQS_LOCAL_PID/status")"
fi
