#!/usr/bin/env bash
# The chaos soak: `short` (CI, debug binaries, a few minutes) or `long` (release, on demand).
# Needs only Postgres binaries (initdb/pg_ctl: the soak makes its own throwaway cluster) and Rust.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
PROFILE="${1:-short}"
if [[ "$PROFILE" == long ]]; then
  cargo build --release -p local-runner -p sqs-local -p exchange-sim -p bench
  BIN=target/release
else
  cargo build -p local-runner -p sqs-local -p exchange-sim -p bench
  BIN=target/debug
fi
exec "$BIN/chaos-soak" --profile "$PROFILE" --bin-dir "$BIN" --work-dir "$LOCAL_DIR/soak-$PROFILE"
