#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# from the jars Maven fetches from Maven Central. No Docker.
#
#   infra/kafka/start.sh            # prints the bootstrap address as its last stdout line
#   BOOTSTRAP=$(infra/kafka/start.sh | tail -n1)
#
# Environment (all optional):
#   KAFKA_RUN_DIR          run directory, wiped and recreated on every start (default: infra/kafka/run)
#   KAFKA_PORT             client (PLAINTEXT) port, default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port, default 9093
#   KAFKA_START_TIMEOUT    seconds to wait for the broker, default 90
#   KAFKA_HEAP             JVM max heap, default 512m
#   KAFKA_JAVA_OPTS        extra JVM options (word-split)
#   JAVA, PYTHON           executables to use (default: java, python3)
#
# Diagnostics go to stderr; stdout carries only the bootstrap address.
set -euo pipefail

# Resolve a relative KAFKA_RUN_DIR against the caller's cwd before moving.
if [[ -n "${KAFKA_RUN_DIR:-}" && "${KAFKA_RUN_DIR}" != /* ]]; then
  KAFKA_RUN_DIR="$PWD/$KAFKA_RUN_DIR"
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
HERE="$PWD"

RUN_DIR="${KAFKA_RUN_DIR:-$HERE/run}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP="${KAFKA_HEAP:-512m}"
JAVA="${JAVA:-java}"
PYTHON="${PYTHON:-python3}"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"
RUN_MARKER=".tollguard-kafka-run"

log() { echo "[kafka start] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

command -v "$JAVA" >/dev/null || die "java not found (Java 17+ is required)"

# --- 1. stop a broker left over from a previous run (before lib/ may change) ----
KAFKA_RUN_DIR="$RUN_DIR" "$HERE/stop.sh" >&2

# --- 2. jars -------------------------------------------------------------------
# lib/ is (re)built when missing or when pom.xml changed since the last fetch;
# it is wiped first so only one Kafka version is ever on the classpath.
pom_sum="$(sha256sum pom.xml | cut -d' ' -f1)"
if [[ ! -f lib/.pom.sha256 || "$(cat lib/.pom.sha256)" != "$pom_sum" ]] \
   || ! compgen -G 'lib/kafka_2.13-*.jar' >/dev/null; then
  command -v mvn >/dev/null || die "mvn not found: it is needed to fetch the Kafka jars"
  log "fetching Kafka jars from Maven Central into lib/ ..."
  rm -rf lib
  # (sed drops the colour-reset codes Maven 3.8 prints even in batch mode)
  if ! mvn -B -q dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime 2>&1 \
       | sed 's/\x1b\[[0-9;]*m//g' >&2; then
    rm -rf lib
    die "mvn dependency:copy-dependencies failed"
  fi
  echo "$pom_sum" > lib/.pom.sha256
fi
CLASSPATH_GLOB="$HERE/lib/*"

# --- 3. the ports must be free -----------------------------------------------------
for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
  if port_open "$p"; then
    die "port $p on 127.0.0.1 is already in use (a broker from another run dir? set KAFKA_PORT/KAFKA_CONTROLLER_PORT)"
  fi
done

# --- 4. fresh run directory ---------------------------------------------------------
if [[ -d "$RUN_DIR" ]]; then
  if [[ -n "$(ls -A "$RUN_DIR")" && ! -e "$RUN_DIR/$RUN_MARKER" ]]; then
    die "$RUN_DIR is not empty and was not made by this script; refusing to wipe it"
  fi
  find "$RUN_DIR" -mindepth 1 -delete
elif [[ -e "$RUN_DIR" ]]; then
  die "$RUN_DIR exists and is not a directory"
fi
mkdir -p "$RUN_DIR/data"
touch "$RUN_DIR/$RUN_MARKER"

{
  sed -e '/^log\.dirs=/d' \
      -e "s|127\.0\.0\.1:9092|127.0.0.1:$KAFKA_PORT|g" \
      -e "s|127\.0\.0\.1:9093|127.0.0.1:$KAFKA_CONTROLLER_PORT|g" \
      server.properties
  printf '\n# added by start.sh\nlog.dirs=%s\n' "$RUN_DIR/data"
} > "$RUN_DIR/server.properties"

LOG_OPTS=(-Dlog4j2.configurationFile="$HERE/log4j2.yaml" -Dkafka.logs.dir="$RUN_DIR")

# --- 5. format storage with a random cluster id -----------------------------------
# A cluster id is a base64url-encoded random UUID (22 chars, must not start with '-').
cluster_id=""
while [[ -z "$cluster_id" || "$cluster_id" == -* ]]; do
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
done
if ! "$JAVA" -Xmx256m "${LOG_OPTS[@]}" -Dkafka.log.file.name=format-server.log -cp "$CLASSPATH_GLOB" kafka.tools.StorageTool \
      format -t "$cluster_id" -c "$RUN_DIR/server.properties" >"$RUN_DIR/format.log" 2>&1; then
  cat "$RUN_DIR/format.log" >&2
  die "formatting the storage failed"
fi

# --- 6. start the broker in the background --------------------------------------
started_ok=0
broker_pid=""
cleanup() {
  if [[ $started_ok -ne 1 && -n "$broker_pid" ]]; then
    log "start failed: stopping the broker (pid $broker_pid)"
    KAFKA_RUN_DIR="$RUN_DIR" "$HERE/stop.sh" >&2 || true
  fi
}
trap cleanup EXIT

t0=$SECONDS
# shellcheck disable=SC2086  # KAFKA_JAVA_OPTS is meant to be word-split
nohup "$JAVA" -Xmx"$HEAP" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
  "${LOG_OPTS[@]}" ${KAFKA_JAVA_OPTS:-} -cp "$CLASSPATH_GLOB" \
  kafka.Kafka "$RUN_DIR/server.properties" </dev/null >"$RUN_DIR/kafka.log" 2>&1 &
broker_pid=$!
echo "$broker_pid" > "$RUN_DIR/kafka.pid"
log "broker pid $broker_pid, run dir $RUN_DIR, cluster id $cluster_id"

# --- 7. wait until a client can connect -----------------------------------------
deadline=$((SECONDS + START_TIMEOUT))
check_alive_and_time() {
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    tail -n 30 "$RUN_DIR/kafka.log" "$RUN_DIR/server.log" >&2 2>/dev/null || true
    die "the broker exited during start-up (see $RUN_DIR/kafka.log and server.log)"
  fi
  if (( SECONDS >= deadline )); then
    tail -n 30 "$RUN_DIR/kafka.log" "$RUN_DIR/server.log" >&2 2>/dev/null || true
    die "the broker was not ready after ${START_TIMEOUT}s"
  fi
}

until port_open "$KAFKA_PORT" \
      && grep -q 'Kafka Server started' "$RUN_DIR/server.log" 2>/dev/null; do
  check_alive_and_time
  sleep 0.5
done

if command -v "$PYTHON" >/dev/null 2>&1 && "$PYTHON" -c 'import kafka' >/dev/null 2>&1; then
  until "$PYTHON" - "$BOOTSTRAP" >"$RUN_DIR/client-check.log" 2>&1 <<'PY'
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="tollguard-start-check",
                         request_timeout_ms=5000)
try:
    admin.list_topics()
finally:
    admin.close()
PY
  do
    check_alive_and_time
    sleep 1
  done
  log "kafka-python admin client connected"
else
  log "kafka-python not importable with $PYTHON: checked the port only"
fi

started_ok=1
log "broker ready in $((SECONDS - t0))s"
echo "$BOOTSTRAP"
