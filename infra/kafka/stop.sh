#!/usr/bin/env bash
# Stop the broker started by start.sh: SIGTERM, wait up to 30 s, then SIGKILL.
# Exits 0 when nothing is running. Honours KAFKA_RUN_DIR like start.sh.
set -euo pipefail

if [[ -n "${KAFKA_RUN_DIR:-}" && "${KAFKA_RUN_DIR}" != /* ]]; then
  KAFKA_RUN_DIR="$PWD/$KAFKA_RUN_DIR"
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
RUN_DIR="${KAFKA_RUN_DIR:-$PWD/run}"
PID_FILE="$RUN_DIR/kafka.pid"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

log() { echo "[kafka stop] $*"; }

# True while $1 is a live (non-zombie) kafka.Kafka JVM; guards against a reused pid.
is_broker() {
  local args
  if [[ -r "/proc/$1/cmdline" ]]; then
    args="$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null || true)"
  else
    args="$(ps -o args= -p "$1" 2>/dev/null || true)"
  fi
  [[ "$args" == *kafka.Kafka* ]]
}

if [[ ! -f "$PID_FILE" ]]; then
  log "no broker running (no pid file)"
  exit 0
fi
pid="$(tr -dc '0-9' < "$PID_FILE")"
if [[ -z "$pid" ]] || ! is_broker "$pid"; then
  log "no broker running (stale pid file removed)"
  rm -f "$PID_FILE"
  exit 0
fi

log "stopping broker pid $pid"
kill -TERM "$pid" 2>/dev/null || true
for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
  is_broker "$pid" || break
  sleep 0.1
done
if is_broker "$pid"; then
  log "still running after ${STOP_TIMEOUT}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_broker "$pid" || break
    sleep 0.1
  done
fi
rm -f "$PID_FILE"
log "stopped"
