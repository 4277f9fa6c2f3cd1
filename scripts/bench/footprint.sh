#!/usr/bin/env bash
# The arm64 bootstrap's size under each build trade of issue #12 (on demand, not in CI): builds
# one function (default api) with cargo-lambda for arm64, once per variant, each variant in a
# target dir of its own under $FOOTPRINT_TARGETS (they do not invalidate each other), and prints
# bytes per variant. The variants add to the release profile of Cargo.toml through cargo's
# --config, so the same script measures trades the profile has not taken:
#   as-is        the release profile as committed
#   abort        as-is + panic = "abort"
#   small-lc     as-is + AWS_LC_SYS_SMALL=1 (aws-lc built with OPENSSL_SMALL)
#   cold-s       small-lc + opt-level "s" for the crates on cold paths (AWS SDK, smithy, aws-lc,
#                tracing-subscriber, utoipa, regex)
#   all-s        small-lc + opt-level "s" for every dependency
#   hot-3        all-s, but opt-level 3 kept for the crates every request runs through (tokio,
#                hyper, axum, serde_json, tokio-postgres, postgres-protocol, bytes, rust_decimal)
#   cold-s-fat   cold-s + lto = "fat", codegen-units = 1
# Usage: scripts/bench/footprint.sh [variant ...]   (FOOTPRINT_BIN=api, FOOTPRINT_OUT=file.json)
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$ROOT"
export PATH="$ROOT/.local/infra-venv/bin:$PATH"   # cargo-lambda and zig, from make infra-check
BIN_NAME="${FOOTPRINT_BIN:-api}"
TARGETS="${FOOTPRINT_TARGETS:-$ROOT/../target-footprint}"
OUT="${FOOTPRINT_OUT:-bench/results/footprint.json}"
VARIANTS=("${@:-as-is abort small-lc cold-s all-s cold-s-fat}")
read -r -a VARIANTS <<<"${VARIANTS[*]}"

COLD_CRATES=(aws-config aws-runtime aws-sigv4 aws-types aws-credential-types aws-smithy-runtime
  aws-smithy-runtime-api aws-smithy-types aws-smithy-json aws-smithy-query aws-smithy-xml
  aws-smithy-http aws-smithy-async aws-smithy-observability aws-sdk-sqs aws-sdk-sns
  aws-sdk-secretsmanager aws-sdk-sts aws-sdk-sso aws-sdk-ssooidc aws-lc-sys aws-lc-rs
  tracing-subscriber utoipa regex regex-automata regex-syntax)

HOT_CRATES=(tokio hyper hyper-util axum serde_json tokio-postgres postgres-protocol postgres-types
  bytes rust_decimal)

flags_for() {
  FLAGS=()
  SMALL=""
  local cold=0 all=0 hot=0
  case "$1" in
    as-is) ;;
    abort) FLAGS+=(--config 'profile.release.panic="abort"') ;;
    small-lc) SMALL=1 ;;
    cold-s) SMALL=1 cold=1 ;;
    all-s) SMALL=1 all=1 ;;
    hot-3) SMALL=1 all=1 hot=1 ;;
    cold-s-fat) SMALL=1 cold=1 FLAGS+=(--config 'profile.release.lto="fat"' --config 'profile.release.codegen-units=1') ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
  if ((cold)); then
    for c in "${COLD_CRATES[@]}"; do FLAGS+=(--config "profile.release.package.$c.opt-level=\"s\""); done
  fi
  ((all)) && FLAGS+=(--config 'profile.release.package."*".opt-level="s"')
  if ((hot)); then
    for c in "${HOT_CRATES[@]}"; do FLAGS+=(--config "profile.release.package.$c.opt-level=3"); done
  fi
  return 0
}

mkdir -p "$TARGETS" "$(dirname "$OUT")"
echo "{" >"$OUT.tmp"
first=1
for variant in "${VARIANTS[@]}"; do
  flags_for "$variant"
  # FOOTPRINT_REUSE=DIR-NAME builds every variant in one target dir: cargo then rebuilds only
  # what a trade changes (quicker; the sizes are the same).
  dir="$TARGETS/${FOOTPRINT_REUSE:-$variant}"
  echo "== $variant: cargo lambda build --release --arm64 --bin $BIN_NAME ${FLAGS[*]} ${SMALL:+(AWS_LC_SYS_SMALL=1)}"
  start=$SECONDS
  env ${SMALL:+AWS_LC_SYS_SMALL=1} CARGO_TARGET_DIR="$dir" \
    cargo lambda build --release --arm64 --bin "$BIN_NAME" "${FLAGS[@]}" >"$TARGETS/$variant.log" 2>&1 \
    || { tail -30 "$TARGETS/$variant.log"; exit 1; }
  took=$((SECONDS - start))
  bytes=$(stat -c %s "$dir/lambda/$BIN_NAME/bootstrap")
  printf '   %-9s %10d bytes  %5.2f MiB  %5.2f MB  (built in %d s)\n' "$variant" "$bytes" \
    "$(awk "BEGIN { print $bytes / 1048576 }")" "$(awk "BEGIN { print $bytes / 1000000 }")" "$took"
  [[ $first == 1 ]] || echo "," >>"$OUT.tmp"
  first=0
  printf '  "%s": {"bytes": %d, "build_seconds": %d}' "$variant" "$bytes" "$took" >>"$OUT.tmp"
done
printf '\n}\n' >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "results: $OUT"
