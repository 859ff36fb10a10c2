#!/usr/bin/env bash
# Airbyte -> QALITA through `qalita-sidecar serve airbyte`.
#   In Airbyte: Settings > Notifications > Webhook URL = http://<this host>:8080/airbyte/webhook,
#   with "Successful syncs" and "Failed syncs" on. Then map each connection id to QALITA ids in
#   config.json ("default" serves connections not listed; without it they are refused with 400).
# This script starts the receiver, posts one sync event the way Airbyte does, and stops it (SIGTERM).
# Without QALITA_WORKER_ENDPOINT / QALITA_WORKER_TOKEN the event waits in .qalita/outbox for
# `qalita-sidecar flush`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${PORT:-8080}"
qalita-sidecar serve airbyte --config "$here/config.json" --port "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server || true' EXIT
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$port/health"; echo
curl -sS -X POST -H 'Content-Type: application/json' --data @"$here/sync_succeeded.json" \
  "http://127.0.0.1:$port/airbyte/webhook"; echo
# A replay of the same event is answered but not shipped twice.
curl -sS -X POST -H 'Content-Type: application/json' --data @"$here/sync_succeeded.json" \
  "http://127.0.0.1:$port/airbyte/webhook"; echo
