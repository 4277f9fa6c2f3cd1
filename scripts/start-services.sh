#!/usr/bin/env bash
# Brings up what the local system and the tests need and is not already running:
# checks Postgres, starts PgBouncer in front of it (installing it if missing), installs
# moto[server] into a project-local virtualenv and starts it, and installs Debian's chromium
# (headless, for the browser test of GET /docs) if it is missing.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$LOCAL_DIR"

# --- Postgres: this machine kind runs one on 127.0.0.1:5432; elsewhere start your own.
wait_for_postgres

# --- PgBouncer (transaction pooling, the local RDS Proxy) on 127.0.0.1:$PGBOUNCER_PORT.
"$ROOT/scripts/start-pgbouncer.sh"

# --- moto (SQS, SNS, Secrets Manager emulator) in .local/venv, pinned in requirements-dev.txt.
VENV="$LOCAL_DIR/venv"
REQS="$ROOT/scripts/requirements-dev.txt"
if [[ ! -x "$VENV/bin/moto_server" ]] || ! cmp -s "$REQS" "$VENV/.installed-requirements"; then
  echo "installing moto into $VENV ..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.installed-requirements"
fi

moto_up() { curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" 2>/dev/null; }
if ! moto_up; then
  echo "starting moto on 127.0.0.1:$MOTO_PORT (log: $LOCAL_DIR/moto.log)"
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$LOCAL_DIR/moto.log" 2>&1 &
  echo $! >"$LOCAL_DIR/moto.pid"
  for _ in $(seq 1 60); do
    if moto_up; then break; fi
    sleep 0.5
  done
  if ! moto_up; then
    echo "error: moto did not start; see $LOCAL_DIR/moto.log" >&2
    exit 1
  fi
fi

# --- chromium (Debian's package) for tests/browser: loads /docs headless. Installed once, as
# root or through sudo; apt lists may be stale on a fresh machine: update, then retry.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "error: chromium is not installed (apt-get install chromium, as root)" >&2
      exit 1
    fi
    SUDO=(sudo)
  fi
  echo "installing chromium (apt-get) ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    echo "apt-get install failed; updating the package lists and retrying ..."
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
fi

echo "services ready: postgres $PGHOST_ADDR:$PGPORT_NUM, pgbouncer 127.0.0.1:$PGBOUNCER_PORT," \
  "moto $AWS_ENDPOINT_URL, $(chromium --version 2>/dev/null || echo 'no chromium')"
