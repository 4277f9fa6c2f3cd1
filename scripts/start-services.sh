#!/usr/bin/env bash
# Brings up what the local system and the tests need and is not already running:
# checks Postgres, starts PgBouncer in front of it (installing it if missing), installs
# moto[server] into a project-local virtualenv and starts it.
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
echo "services ready: postgres $PGHOST_ADDR:$PGPORT_NUM, pgbouncer 127.0.0.1:$PGBOUNCER_PORT," \
  "moto $AWS_ENDPOINT_URL"
