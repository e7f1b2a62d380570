#!/usr/bin/env bash
# The body of `make dev`: runs inside `devstack exec`, so the local stack's
# settings (REDIS_URL, MONGODB_URI, S3_*, LIVEKIT_*, LIVEKIT_SIP_TRUNK_ID and
# the DEVSTACK_SIP_PHONE_* of the trunk's far end) are in the environment.
# Starts the SIP phone the trunk dials and the OpenAI simulator, checks the
# stack, runs the worker in the foreground, places one sample call end to
# end over SIP and prints its record. Ctrl-C stops the worker; devstack
# then stops the servers.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT TERM

# The phone network and OpenAI cannot be reached from here. The worker
# dials for real (DIALER=sip): LiveKit's SIP service sends the INVITE over
# the stack's trunk, with its digest credentials, to a SIP phone simulator
# (the carrier and the handset) that answers as the clinic's front desk and
# speaks G.711 over RTP. A local server speaks the OpenAI protocols; the
# worker refuses a loopback OPENAI_BASE_URL when APP_ENV=production.
export DIALER=sip
SIPPHONE_USERNAME="$DEVSTACK_SIP_PHONE_USER" SIPPHONE_PASSWORD="$DEVSTACK_SIP_PHONE_PASSWORD" \
  bin/sipphone --addr "$DEVSTACK_SIP_PHONE_ADDR" --script talk --addr-file "$tmp/phone-addr" &
pids+=($!)
bin/openaisim --script scripts/dev/agent.json --analysis scripts/dev/analysis.json --url-file "$tmp/openai-url" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/openai-url" ] && [ -s "$tmp/phone-addr" ] && break; sleep 0.1; done
if [ ! -s "$tmp/phone-addr" ]; then
  echo "dev: the SIP phone did not start at $DEVSTACK_SIP_PHONE_ADDR" >&2
  exit 1
fi
export OPENAI_BASE_URL=$(cat "$tmp/openai-url")
export OPENAI_API_KEY=sk-realtimesim-local

echo "== worker health (local stack)"
bin/worker health
echo "== worker verify sip (the trunk the call goes out on)"
bin/worker verify sip

echo "== starting worker (Ctrl-C to stop)"
bin/worker run &
worker=$!
pids=("$worker" "${pids[@]}")

# Calls are placed only between 08:00 and 21:00 where the callee is, so
# the sample call goes to a number where it is mid-afternoon now (the
# phone simulator answers every number).
phone=$(go run ./internal/testenv/cmd/daytimenumber)
attempt="dev-$(date +%Y%m%d-%H%M%S)"
echo "== placing a sample call ($attempt)"
bin/worker enqueue --type call:outbound --task-id "$attempt" --payload '{"inline": {
  "attempt_id": "'"$attempt"'", "phone": "'"$phone"'",
  "instructions": "You are Ava from DocShield. Confirm Dr. {{doctor}}'"'"'s appointment at {{practice}}.",
  "variables": {"doctor": "Patel", "practice": "Elm Street Dental"}}}'

# Wait (bounded) for the call to end and be analysed.
done=0
for _ in $(seq 1 600); do
  if ! kill -0 "$worker" 2>/dev/null; then
    echo "dev: the worker exited; see its log lines above" >&2
    exit 1
  fi
  if bin/worker call show "$attempt" 2>/dev/null | grep -q '"summary"'; then done=1; break; fi
  sleep 0.2
done
echo "== call record"
bin/worker call show "$attempt" || true
echo "== recording"
bin/worker recording url "$attempt" || true
echo "== queue stats"
bin/worker queue stats
if [ "$done" != 1 ]; then
  echo "dev: the sample call did not finish within 120s" >&2
  exit 1
fi

if [ "${DEV_ONESHOT:-0}" = 1 ]; then
  exit 0
fi
echo "== worker running; its log lines are above (console lines on a terminal, JSON otherwise). Ctrl-C to stop everything."
wait "$worker"
