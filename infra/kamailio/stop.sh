#!/usr/bin/env bash
# Stop the Kamailio started by infra/kamailio/start.sh (same KAMAILIO_RUN_DIR): SIGTERM, SIGKILL after 10 s.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN_DIR="${KAMAILIO_RUN_DIR:-$HERE/run}"
PID_FILE="$RUN_DIR/kamailio.pid"
[ -f "$PID_FILE" ] || exit 0
pid="$(cat "$PID_FILE")"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$PID_FILE"
