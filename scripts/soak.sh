#!/usr/bin/env bash
# The chaos soak: `short` (CI, debug binaries, a few minutes) or `long` (release, on demand).
# Needs Postgres binaries (initdb/pg_ctl: the soak makes its own throwaway cluster), PgBouncer
# (installed by start-pgbouncer.sh) and Rust.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
PROFILE="${1:-short}"
# The soak's runner reaches its throwaway Postgres through a PgBouncer of its own (transaction
# pooling, as RDS Proxy in AWS); this installs the package if needed (and starts the shared one).
"$ROOT/scripts/start-pgbouncer.sh"
if [[ "$PROFILE" == long ]]; then
  cargo build --release -p local-runner -p ingester -p sqs-local -p exchange-sim -p bench
  BIN=target/release
else
  cargo build -p local-runner -p ingester -p sqs-local -p exchange-sim -p bench
  BIN=target/debug
fi
exec "$BIN/chaos-soak" --profile "$PROFILE" --bin-dir "$BIN" --work-dir "$LOCAL_DIR/soak-$PROFILE"
