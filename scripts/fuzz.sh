#!/usr/bin/env bash
# Fuzzes the request parser (body bytes -> JSON -> domain order) with cargo-fuzz / libFuzzer
# for a bounded time: `scripts/fuzz.sh [seconds]` (default 60; CI runs it through .ci/run).
# cargo-fuzz is installed with cargo (into ~/.cargo/bin) when that version is missing. libFuzzer's sanitizer flags are nightly
# rustc options; RUSTC_BOOTSTRAP=1 lets this machine's stable toolchain accept them (the
# toolchain ships the ASan runtime). A crash fails the script and leaves the input in
# fuzz/artifacts/parse_order/ (reproduce: cargo fuzz run parse_order <file>).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SECONDS_TO_RUN="${1:-60}"
CARGO_FUZZ_VERSION=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (about a minute, once per machine) ..."
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
# New inputs go to a corpus outside the repository; the committed seeds are read only.
CORPUS="$LOCAL_DIR/fuzz-corpus/parse_order"
mkdir -p "$CORPUS"
cargo fuzz build parse_order
# libFuzzer reports every new coverage point on its own line (thousands a minute); those are
# dropped here, while a crash report, the final stats and the exit status come through.
cargo fuzz run parse_order "$CORPUS" fuzz/seeds/parse_order -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 2>&1 \
  | grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
