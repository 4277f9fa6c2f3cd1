#!/usr/bin/env bash
# Searches the logs of a test run for secrets. The test harness gives every local runner it
# starts canary secrets (tests/support/local_runner.rs: API key pepper, exchange API key,
# database password) and an API key; none of them may appear in any log line, nor may any
# complete API key (sok_<16 hex>_<64 hex>). Fails, too, if there are no logs to search, so that
# the check can never pass by looking at nothing.
set -euo pipefail
DIR="${1:?usage: check-logs-for-secrets.sh LOG_DIR}"
shopt -s nullglob
LOGS=("$DIR"/*.log)
if [[ ${#LOGS[@]} -eq 0 ]]; then
  echo "secrets check: no logs in $DIR (did the end-to-end tests run?)" >&2
  exit 1
fi
LINES=$(cat "${LOGS[@]}" | wc -l)
if [[ "$LINES" -lt 100 ]]; then
  echo "secrets check: only $LINES log lines in $DIR; expected a full test run's worth" >&2
  exit 1
fi
PATTERNS=(
  'canary-pepper-3f9c1e7a-must-never-be-logged'
  'canary-exchange-key-b71d40-must-never-be-logged'
  'canary-db-password-5e2a91'
  'sok_[0-9a-f]{16}_[0-9a-f]{64}'
)
FOUND=0
for pattern in "${PATTERNS[@]}"; do
  if grep -E -l -- "$pattern" "${LOGS[@]}" >/dev/null 2>&1; then
    echo "secrets check: FOUND /$pattern/ in:" >&2
    grep -E -l -- "$pattern" "${LOGS[@]}" >&2
    FOUND=1
  fi
done
if [[ $FOUND -ne 0 ]]; then
  exit 1
fi
echo "secrets check: ${#LOGS[@]} runner logs, $LINES lines, none holds a secret (${#PATTERNS[@]} patterns)"
