#!/usr/bin/env bash
# The body of `make dev`: runs inside `devstack exec`, so the local stack's
# settings (REDIS_URL, MONGODB_URI, S3_*, LIVEKIT_*) are in the environment.
# Checks the stack, starts the worker in the foreground, feeds it a sample
# task and shows what happened. Ctrl-C stops the worker; devstack then stops
# the servers.
set -euo pipefail
cd "$(dirname "$0")/.."

# The local stack has LiveKit but no SIP service: the callee is simulated
# (refused in production by the worker's config).
export DIALER=sim

echo "== worker health (local stack)"
bin/worker health

echo "== starting worker (Ctrl-C to stop)"
bin/worker run &
worker=$!
stop() { kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

echo "== enqueue a sample task"
id=$(bin/worker enqueue --type system:probe --payload '{"hold":"1s"}')
echo "enqueued system:probe $id"

# Wait (bounded) until the worker has processed it, then show the queues.
processed=0
for _ in $(seq 1 100); do
  if ! kill -0 "$worker" 2>/dev/null; then
    echo "dev: the worker exited; see its log lines above" >&2
    exit 1
  fi
  if bin/worker queue stats --json | grep -q '"processed_total": [1-9]'; then processed=1; break; fi
  sleep 0.2
done
echo "== queue stats"
bin/worker queue stats
if [ "$processed" != 1 ]; then
  echo "dev: the sample task was not processed within 20s" >&2
  exit 1
fi

if [ "${DEV_ONESHOT:-0}" = 1 ]; then
  exit 0
fi
echo "== worker running; logs above are its JSON lines. Ctrl-C to stop everything."
wait "$worker"
