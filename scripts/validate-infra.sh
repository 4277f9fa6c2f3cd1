#!/usr/bin/env bash
# Offline validation of the SAM deployment (infra/template.yaml + samconfig.toml). Needs no AWS
# account and no credentials; it reaches only PyPI (to install the pinned tools once) and
# crates.io (cargo). Run from anywhere; CI runs it through `make infra-check`.
#
#   1. cfn-lint infra/template.yaml                      (cfn-lint pinned to 1.53.3)
#   2. cfn-lint must REJECT tests/fixtures/broken-template.yaml   (guards the pin)
#   3. cfn-lint -a cfn_lint_serverless.rules -- infra/template.yaml   (no errors, no warnings)
#   4. sam validate --lint
#   5. checkov (IaC security scanner, pinned) over infra/template.yaml: no failed check; each
#      skipped one carries its reason in the template (Metadata.checkov.skip[].comment)
#   6. checkov must REJECT tests/fixtures/checkov-canary.yaml  (guards the scanner)
#   7. sam build (cargo-lambda, release, arm64) and the size and architecture of each bootstrap
#      (each arm64 bootstrap at most INFRA_MAX_BOOTSTRAP_BYTES, default 10 000 000)
#
# The template's invariants (visibility timeout, redrive, alarms, IAM, environment, ...) are a
# Rust test: `cargo test -p system-tests --test infra` (part of `make test`).
#
# Environment:
#   INFRA_VENV=DIR        virtualenv for the tools (default .local/infra-venv)
#   CHECKOV_VENV=DIR      virtualenv for checkov (default .local/checkov-venv; its pins conflict
#                         with aws-sam-cli's, see scripts/requirements-checkov.txt)
#   INFRA_SKIP_BUILD=1    stop after step 6 (quick check while editing the template)
#   INFRA_ARCH=x86_64     build x86_64 artifacts even if the aarch64 target is available
# Never run here: `sam local` (needs Docker), `sam deploy`/`sam package` (need AWS).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${INFRA_VENV:-$ROOT/.local/infra-venv}"
REQS="$ROOT/scripts/requirements-infra.txt"
TEMPLATE="infra/template.yaml"
BROKEN="tests/fixtures/broken-template.yaml"
# The error the broken template must produce: the SAM transform refusing the misspelled property.
BROKEN_EXPECTED="FunctionResponseType not defined"
CHECKOV_VENV="${CHECKOV_VENV:-$ROOT/.local/checkov-venv}"
CHECKOV_REQS="$ROOT/scripts/requirements-checkov.txt"
CHECKOV_CANARY="tests/fixtures/checkov-canary.yaml"
# The finding the canary must produce: its SNS topic is not encrypted.
CHECKOV_CANARY_EXPECTED="CKV_AWS_26"

# No telemetry, no update checks, a region for the SAM transform; never any credentials.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"

TOTAL_START=$SECONDS
SUMMARY=()
step_start() {
  STEP_NAME="$1"
  STEP_START=$SECONDS
  echo
  echo "==> $STEP_NAME"
}
step_done() {
  local took=$((SECONDS - STEP_START))
  echo "    ok ($took s)"
  SUMMARY+=("$(printf '%4d s  %s' "$took" "$STEP_NAME")")
}

# --- 0. Tools: a project-local virtualenv with the pinned requirements ---------------------------
step_start "tools: $VENV from scripts/requirements-infra.txt"
if [[ ! -x "$VENV/bin/sam" ]] || ! cmp -s "$REQS" "$VENV/.installed-requirements"; then
  echo "    installing (once; about a minute) ..."
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  "$VENV/bin/pip" check
  cp "$REQS" "$VENV/.installed-requirements"
fi
if [[ ! -x "$CHECKOV_VENV/bin/checkov" ]] || ! cmp -s "$CHECKOV_REQS" "$CHECKOV_VENV/.installed-requirements"; then
  echo "    installing checkov into $CHECKOV_VENV (once; about a minute) ..."
  rm -rf "$CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$CHECKOV_REQS"
  "$CHECKOV_VENV/bin/pip" check
  cp "$CHECKOV_REQS" "$CHECKOV_VENV/.installed-requirements"
fi
# sam build finds cargo-lambda on PATH, and cargo-lambda finds zig through `python3 -m ziglang`.
export PATH="$VENV/bin:$PATH"
echo "    checkov $("$CHECKOV_VENV/bin/checkov" --version)"
echo "    $(cfn-lint --version), $(sam --version), cargo-lambda $(pip show cargo-lambda 2>/dev/null | sed -n 's/^Version: //p'), ziglang $(python3 -m ziglang version)"
step_done

# --- 1. cfn-lint ---------------------------------------------------------------------------------
step_start "cfn-lint $TEMPLATE"
cfn-lint "$TEMPLATE"
step_done

# --- 2. the lint's canary: a template with a broken AWS::Serverless::Function property ----------
step_start "cfn-lint rejects $BROKEN"
set +e
BROKEN_OUTPUT="$(cfn-lint "$BROKEN" 2>&1)"
BROKEN_STATUS=$?
set -e
if [[ $BROKEN_STATUS -eq 0 ]]; then
  echo "error: cfn-lint passed $BROKEN, which misspells an SQS event property." >&2
  echo "       This cfn-lint no longer validates AWS::Serverless::* properties (cfn-lint >= 1.54" >&2
  echo "       dropped the SAM transform); keep cfn-lint==1.53.3 in scripts/requirements-infra.txt." >&2
  exit 1
fi
if ! grep -q "$BROKEN_EXPECTED" <<<"$BROKEN_OUTPUT"; then
  echo "error: cfn-lint rejected $BROKEN, but not for the planted error ('$BROKEN_EXPECTED'):" >&2
  echo "$BROKEN_OUTPUT" >&2
  exit 1
fi
echo "    rejected as it must be: $(grep -m1 "$BROKEN_EXPECTED" <<<"$BROKEN_OUTPUT")"
step_done

# --- 3. serverless rules (waivers: Metadata.cfn-lint + Metadata.WaiverReasons in the template) --
step_start "cfn-lint -a cfn_lint_serverless.rules -- $TEMPLATE"
cfn-lint -a cfn_lint_serverless.rules -- "$TEMPLATE"
step_done

# --- 4. sam validate --lint ----------------------------------------------------------------------
step_start "sam validate --lint"
sam validate --lint --template-file "$TEMPLATE" --region "$AWS_DEFAULT_REGION"
step_done

# --- 5. checkov ----------------------------------------------------------------------------------
# Offline: --skip-download keeps it from fetching guidelines from its vendor's API.
checkov_scan() {
  "$CHECKOV_VENV/bin/checkov" --file "$1" --framework cloudformation --compact --quiet \
    --skip-download 2>&1
}
step_start "checkov $TEMPLATE (no failed check; skips carry their reason in the template)"
set +e
CHECKOV_OUTPUT="$(checkov_scan "$TEMPLATE")"
CHECKOV_STATUS=$?
set -e
{ grep -E "Passed checks|Check:|FAILED" <<<"$CHECKOV_OUTPUT" || echo "$CHECKOV_OUTPUT"; } | sed "s/^/    /"
if [[ $CHECKOV_STATUS -ne 0 ]]; then
  echo "error: checkov found a problem in $TEMPLATE: fix it, or skip it in the resource's" >&2
  echo "       Metadata.checkov.skip with a one-line comment saying why it does not apply." >&2
  exit 1
fi
step_done

# --- 6. the scanner's canary: an unencrypted SNS topic ------------------------------------------
step_start "checkov rejects $CHECKOV_CANARY"
set +e
CANARY_OUTPUT="$(checkov_scan "$CHECKOV_CANARY")"
CANARY_STATUS=$?
set -e
if [[ $CANARY_STATUS -eq 0 ]] || ! grep -q "$CHECKOV_CANARY_EXPECTED" <<<"$CANARY_OUTPUT"; then
  echo "error: checkov did not reject $CHECKOV_CANARY with $CHECKOV_CANARY_EXPECTED (exit $CANARY_STATUS):" >&2
  echo "$CANARY_OUTPUT" >&2
  exit 1
fi
echo "    rejected as it must be: $(grep -m1 "$CHECKOV_CANARY_EXPECTED" <<<"$CANARY_OUTPUT")"
step_done

if [[ "${INFRA_SKIP_BUILD:-0}" == "1" ]]; then
  echo
  echo "INFRA_SKIP_BUILD=1: not building the artifacts."
  printf '%s\n' "${SUMMARY[@]}"
  exit 0
fi

# --- 7. sam build --------------------------------------------------------------------------------
# Lambda runs the functions on arm64 (Graviton). cargo-lambda cross-compiles with zig, but the
# Rust standard library for aarch64 must be installed. Where it is missing and cannot be
# installed, build x86_64 instead (the template's Architecture parameter, for this build only)
# and say so loudly: those artifacts are fine for checking the build, not for deploying the
# default (arm64) stack.
ARCH="${INFRA_ARCH:-arm64}"
ARCH_REASON=""
if [[ "$ARCH" == "arm64" ]]; then
  if ! command -v rustup >/dev/null 2>&1; then
    ARCH=x86_64
    ARCH_REASON="rustup is not installed, so the aarch64-unknown-linux-gnu target cannot be added"
  elif ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "    adding the Rust target aarch64-unknown-linux-gnu ..."
    if ! timeout 300 rustup target add aarch64-unknown-linux-gnu; then
      ARCH=x86_64
      ARCH_REASON="the Rust target aarch64-unknown-linux-gnu is missing and 'rustup target add' failed (no network to the Rust distribution server?)"
    fi
  fi
elif [[ "$ARCH" != "x86_64" ]]; then
  echo "error: INFRA_ARCH must be arm64 or x86_64" >&2
  exit 1
fi

BUILD_ARGS=()
if [[ "$ARCH" == "x86_64" ]]; then
  BUILD_ARGS+=(--parameter-overrides "Architecture=x86_64")
  echo
  echo "!!! WARNING: building x86_64 artifacts, not arm64: ${ARCH_REASON:-INFRA_ARCH=x86_64}."
  echo "!!! They prove that the functions build for Lambda; deploy from a machine with the"
  echo "!!! aarch64 target (rustup target add aarch64-unknown-linux-gnu) for the arm64 stack."
fi

# sam build runs one `cargo lambda build --release [--arm64] --bin <name>` per function, one after
# the other. Building the seven binaries in one cargo invocation first compiles the shared code
# once and links the binaries in parallel; sam build's own invocations then find them up to
# date (same flags, same features) and only copy them. Set INFRA_PREBUILD=0 to skip.
if [[ "${INFRA_PREBUILD:-1}" == "1" ]]; then
  step_start "cargo lambda build --release ($ARCH) of the seven functions"
  CARGO_LAMBDA_ARCH=()
  [[ "$ARCH" == "arm64" ]] && CARGO_LAMBDA_ARCH=(--arm64)
  cargo lambda build --release "${CARGO_LAMBDA_ARCH[@]}" \
    --bin api --bin placer --bin alerter --bin sweeper --bin migrator --bin docs --bin live-connect
  step_done
fi

step_start "sam build ($ARCH, release, cargo-lambda; artifacts in .aws-sam/build)"
# Run from the repository root so that samconfig.toml's build settings apply, as for ops.
rm -rf .aws-sam/build
sam build ${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"}
step_done

echo
echo "Lambda artifacts ($ARCH):"
# ELF e_machine (2 bytes at offset 18): 183 = AArch64, 62 = x86-64.
EXPECTED_MACHINE=$([[ "$ARCH" == "arm64" ]] && echo 183 || echo 62)
FUNCTIONS=0
OVERSIZE=()
MAX_BOOTSTRAP_BYTES="${INFRA_MAX_BOOTSTRAP_BYTES:-10000000}"
for bootstrap in .aws-sam/build/*/bootstrap; do
  [[ -f "$bootstrap" ]] || continue
  FUNCTIONS=$((FUNCTIONS + 1))
  function_name="$(basename "$(dirname "$bootstrap")")"
  bytes=$(stat -c %s "$bootstrap")
  machine=$(od -An -t u2 -j 18 -N 2 "$bootstrap" | tr -d ' ')
  case "$machine" in
    183) machine_name="ELF aarch64" ;;
    62) machine_name="ELF x86-64" ;;
    *) machine_name="ELF machine $machine" ;;
  esac
  printf '  %-18s %9d bytes (%4.1f MiB)  %s\n' "$function_name" "$bytes" \
    "$(awk "BEGIN { print $bytes / 1048576 }")" "$machine_name"
  if [[ "$machine" != "$EXPECTED_MACHINE" ]]; then
    echo "error: $bootstrap is $machine_name, expected $ARCH" >&2
    exit 1
  fi
  # The size budget of issue #12 (docs/BENCHMARKS.md §4): a bootstrap over it is a cold start
  # that pays to load and page in more code. Checked for the deployed (arm64) artifacts only.
  if [[ "$ARCH" == "arm64" && "$bytes" -gt "$MAX_BOOTSTRAP_BYTES" ]]; then
    OVERSIZE+=("$function_name: $bytes bytes > $MAX_BOOTSTRAP_BYTES")
  fi
done
if [[ ${#OVERSIZE[@]} -gt 0 ]]; then
  printf 'error: bootstrap over the size budget (INFRA_MAX_BOOTSTRAP_BYTES): %s\n' "${OVERSIZE[@]}" >&2
  echo "       measure what grew with scripts/bench/footprint.sh; see the trades in Cargo.toml's profile" >&2
  exit 1
fi
# One artifact per function of the template (seven: api, placer, alerter, sweeper, migrator, docs,
# live-connect;
# tests/infra checks that list against the template).
EXPECTED_FUNCTIONS=$(grep -c '^      BuildMethod: rust-cargolambda$' "$TEMPLATE")
if [[ $FUNCTIONS -ne $EXPECTED_FUNCTIONS ]]; then
  echo "error: expected $EXPECTED_FUNCTIONS function artifacts in .aws-sam/build, found $FUNCTIONS" >&2
  exit 1
fi
if [[ "$ARCH" == "x86_64" ]]; then
  echo "  NOTE: these are x86_64 artifacts (${ARCH_REASON:-INFRA_ARCH=x86_64}); the stack deploys arm64."
fi

echo
echo "Infrastructure validation passed in $((SECONDS - TOTAL_START)) s:"
printf '%s\n' "${SUMMARY[@]}"
