#!/usr/bin/env bash
# Runs `worker health` and turns its result into a verdict and an exit code,
# for use right after a deploy, a rollback or a config change.
#
#   scripts/health-check.sh                 # the local build: bin/worker health
#   scripts/health-check.sh APP             # a one-off dyno of Heroku app APP
#   scripts/health-check.sh --json APP      # pass --json through (JSON on stdout)
#
# Exit status: 0 when every check passed; the worker's (or heroku's) non-zero
# status otherwise; 2 for a usage error; 124 when the run timed out.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/health-check.sh [--json] [HEROKU_APP]

Runs `worker health` and prints its output followed by a one-line verdict.

  HEROKU_APP  run the check in a one-off dyno of this app:
                heroku run --exit-code --no-tty --type worker -a HEROKU_APP -- bin/worker health
              Without it, the local binary runs with the local environment.
  --json      pass --json to the worker; stdout is then the worker's JSON
              ({"ok":...,"checks":[...]}) and the verdict goes to stderr.
  -h, --help  show this help.

Environment:
  WORKER_BIN             local worker binary (default: bin/worker at the repo root)
  HEALTH_CHECK_TIMEOUT   give up after this many seconds (default: 180)

Exit status: 0 all checks passed; non-zero otherwise (the worker's or heroku's
status; 2 usage error; 124 timed out).
EOF
}

json=false
app=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --json)
      json=true
      ;;
    -*)
      echo "health-check: unknown option: $1" >&2
      usage >&2
      exit 2
      ;;
    *)
      if [ -n "$app" ]; then
        echo "health-check: more than one app given: $app, $1" >&2
        exit 2
      fi
      app="$1"
      ;;
  esac
  shift
done

timeout_s="${HEALTH_CHECK_TIMEOUT:-180}"
case "$timeout_s" in
  '' | *[!0-9]*)
    echo "health-check: HEALTH_CHECK_TIMEOUT must be a whole number of seconds, got: $timeout_s" >&2
    exit 2
    ;;
esac

health_args=(health)
if $json; then
  health_args+=(--json)
fi

if [ -n "$app" ]; then
  if ! command -v heroku >/dev/null 2>&1; then
    echo "health-check: the heroku CLI is not installed (needed to check app $app)" >&2
    exit 127
  fi
  where="app $app"
  # --exit-code: without it heroku run exits 0 whatever the worker returned.
  # --type worker: a container app's one-off dyno runs the image of that
  # process type, and this app has no web image.
  # --no-tty: keeps the output (and --json) free of terminal control codes.
  cmd=(heroku run --exit-code --no-tty --type worker -a "$app" -- bin/worker "${health_args[@]}")
else
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  worker="${WORKER_BIN:-$repo_root/bin/worker}"
  if [ ! -x "$worker" ]; then
    echo "health-check: no worker binary at $worker (build it first, or set WORKER_BIN)" >&2
    exit 127
  fi
  where="local $worker"
  cmd=("$worker" "${health_args[@]}")
fi

# The verdict stays off stdout in JSON mode so stdout remains parseable.
verdict() {
  if $json; then
    echo "$1" >&2
  else
    echo "$1"
  fi
}

if command -v timeout >/dev/null 2>&1; then
  cmd=(timeout "$timeout_s" "${cmd[@]}")
fi

status=0
"${cmd[@]}" || status=$?

if [ "$status" -eq 0 ]; then
  verdict "health-check: OK: all checks passed ($where)"
elif [ "$status" -eq 124 ]; then
  verdict "health-check: FAILED: no answer within ${timeout_s}s ($where)"
else
  verdict "health-check: FAILED: exit status $status ($where)"
fi
exit "$status"
