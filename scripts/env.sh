# Shared defaults for the run and test commands; sourced, not executed.
# Every value can be overridden from the environment.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local}"
export MOTO_PORT="${MOTO_PORT:-5055}"
export PGHOST_ADDR="${PGHOST_ADDR:-127.0.0.1}"
export PGPORT_NUM="${PGPORT_NUM:-5432}"
export PGUSER_NAME="${PGUSER_NAME:-postgres}"
# PgBouncer in transaction pooling mode in front of that server (scripts/start-pgbouncer.sh): the
# local stand-in for RDS Proxy. `make test` sends the functions' connections through it
# (TEST_DATABASE_VIA=pgbouncer); `LOCAL_DB_VIA=pgbouncer make run` does the same for the runner.
export PGBOUNCER_PORT="${PGBOUNCER_PORT:-6432}"

# moto accepts any credentials; the SDK only needs some to sign with.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$MOTO_PORT}"
export AWS_EC2_METADATA_DISABLED=true

export DATABASE_URL="${DATABASE_URL:-postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/orders}"
# The tests create one throwaway database per test through this admin connection.
export TEST_ADMIN_DATABASE_URL="${TEST_ADMIN_DATABASE_URL:-postgres://$PGUSER_NAME@$PGHOST_ADDR:$PGPORT_NUM/postgres}"

# The pepper of the stored API key hashes. This one is public and only for local runs and tests;
# in AWS it comes from Secrets Manager (API_KEY_PEPPER_SECRET_ARN). At least 32 bytes.
export API_KEY_PEPPER="${API_KEY_PEPPER:-local-development-pepper-not-a-secret-000}"

# Waits up to 10 s for the PostgreSQL server the scripts use; fails with what to set otherwise.
wait_for_postgres() {
  for _ in $(seq 1 20); do
    if pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM"; then return 0; fi
    sleep 0.5
  done
  echo "error: no PostgreSQL server on $PGHOST_ADDR:$PGPORT_NUM (set PGHOST_ADDR/PGPORT_NUM or start one)" >&2
  return 1
}
