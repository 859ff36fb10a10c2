#!/usr/bin/env bash
# Airbyte -> QALITA through `qalita-sidecar serve airbyte`.
#   In Airbyte: Settings > Notifications > Webhook URL =
#   http://<this host>:8080/airbyte/webhook/<secret>, with "Successful syncs" and "Failed syncs"
#   on; the receiver refuses posts without the secret (QALITA_AIRBYTE_WEBHOOK_SECRET here). Then map each connection id to QALITA ids in
#   config.json ("default" serves connections not listed; without it they are refused with 400).
# This script starts the receiver, posts one sync event the way Airbyte does, and stops it (SIGTERM).
# Without QALITA_WORKER_ENDPOINT / QALITA_WORKER_TOKEN the event waits in .qalita/outbox for
# `qalita-sidecar flush`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${PORT:-8080}"
# A secret for this demo only; in production keep one in a file (--secret-file).
export QALITA_AIRBYTE_WEBHOOK_SECRET="${QALITA_AIRBYTE_WEBHOOK_SECRET:-$(openssl rand -hex 24 2>/dev/null || od -An -tx1 -N24 /dev/urandom | tr -d ' \n')}"
qalita-sidecar serve airbyte --config "$here/config.json" --port "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server || true' EXIT
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$port/health"; echo
curl -sS -X POST -H 'Content-Type: application/json' --data @"$here/sync_succeeded.json" \
  "http://127.0.0.1:$port/airbyte/webhook/$QALITA_AIRBYTE_WEBHOOK_SECRET"; echo
# A replay of the same event is answered but not shipped twice.
curl -sS -X POST -H 'Content-Type: application/json' --data @"$here/sync_succeeded.json" \
  "http://127.0.0.1:$port/airbyte/webhook/$QALITA_AIRBYTE_WEBHOOK_SECRET"; echo
