#!/usr/bin/env bash
# Soda Core scan of the sample retail data, shipped to QALITA by the sidecar.
#   pip install -e ".[soda]"      (from the repository root)
#   bash examples/soda/run.sh
# Without QALITA_WORKER_ENDPOINT / QALITA_WORKER_TOKEN / QALITA_PACK_ID / QALITA_PACK_VERSION_ID
# the shipment waits in the outbox (.qalita/outbox) for `qalita-sidecar flush`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/../data"
export SODA_PG_HOST="${SODA_PG_HOST:-127.0.0.1}" SODA_PG_PORT="${SODA_PG_PORT:-5432}"
export SODA_PG_USER="${SODA_PG_USER:-postgres}" SODA_PG_PASSWORD="${SODA_PG_PASSWORD:-}"
export SODA_PG_DATABASE="${SODA_PG_DATABASE:-soda_retail}"
export PGPASSWORD="$SODA_PG_PASSWORD"
psql_args=(-h "$SODA_PG_HOST" -p "$SODA_PG_PORT" -U "$SODA_PG_USER")
psql "${psql_args[@]}" -d postgres -Atc "select 1 from pg_database where datname = '$SODA_PG_DATABASE'" \
  | grep -q 1 || createdb "${psql_args[@]}" "$SODA_PG_DATABASE"
psql "${psql_args[@]}" -d "$SODA_PG_DATABASE" -q -v ON_ERROR_STOP=1 -f "$here/load.sql" \
  -c "\\copy orders from '$data/orders.csv' csv header" \
  -c "\\copy customers from '$data/customers.csv' csv header"

# Soda Core sends anonymous usage stats unless ~/.soda/config.yml says
# `send_anonymous_usage_stats: false` (offline, each attempt costs seconds of retries).
# Checks fail by design: soda then exits non-zero (1 warn, 2 fail); the results file is written.
soda scan -d retail -c "$here/configuration.yml" "$here/checks.yml" -srf scan_results.json || true
qalita-sidecar ingest soda --file scan_results.json
