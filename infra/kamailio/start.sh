#!/usr/bin/env bash
# Start Kamailio (Debian's kamailio 5.6) with infra/kamailio/kamailio.cfg on 127.0.0.1, in the
# background; wait until it answers SIP OPTIONS; print "127.0.0.1:PORT" as the last line.
#
# Environment (all optional):
#   KAMAILIO_RUN_DIR      pid file, runtime dir and kamailio.log   (default: infra/kamailio/run)
#   KAMAILIO_SIP_PORT     UDP port on 127.0.0.1                    (default: 5060)
#   KAMAILIO_NEXT_HOP     where INVITEs are relayed                (default: sip:127.0.0.1:5070)
#   TOLLGUARD_AUTHORIZE_URL  the worker's /v1/authorize           (default: http://127.0.0.1:6066/v1/authorize)
#   TOLLGUARD_API_TOKEN   the worker's bearer token, if it has one (read by the config from the environment)
#   AUTHZ_FAIL_CLOSED     non-empty: 503 when the worker cannot answer (default: let the call through)
#   KAMAILIO              the binary                               (default: kamailio on PATH, else /usr/sbin/kamailio)
# Stop it with infra/kamailio/stop.sh (same KAMAILIO_RUN_DIR).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN_DIR="${KAMAILIO_RUN_DIR:-$HERE/run}"
SIP_PORT="${KAMAILIO_SIP_PORT:-5060}"
NEXT_HOP="${KAMAILIO_NEXT_HOP:-sip:127.0.0.1:5070}"
AUTHZ_URL="${TOLLGUARD_AUTHORIZE_URL:-http://127.0.0.1:6066/v1/authorize}"
KAMAILIO="${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}"
PYTHON="${PYTHON:-python3}"

[ -x "$KAMAILIO" ] || { echo "kamailio not found (apt-get install kamailio kamailio-utils-modules)" >&2; exit 3; }
mkdir -p "$RUN_DIR"
if [ -f "$RUN_DIR/kamailio.pid" ] && kill -0 "$(cat "$RUN_DIR/kamailio.pid")" 2>/dev/null; then
  echo "kamailio already running from $RUN_DIR (pid $(cat "$RUN_DIR/kamailio.pid"))" >&2; exit 1
fi
args=(-f "$HERE/kamailio.cfg" -DD -E -Y "$RUN_DIR" -w "$RUN_DIR" -m 64 -M 8
      -A "SIP_PORT=$SIP_PORT" -A "NEXT_HOP=\"$NEXT_HOP\"" -A "AUTHZ_URL=\"$AUTHZ_URL\"")
if [ -n "${AUTHZ_FAIL_CLOSED:-}" ]; then args+=(-A AUTHZ_FAIL_CLOSED); fi
"$KAMAILIO" -c "${args[@]}" >"$RUN_DIR/kamailio-check.log" 2>&1 \
  || { echo "kamailio refused the config:" >&2; tail -n 20 "$RUN_DIR/kamailio-check.log" >&2; exit 1; }
setsid "$KAMAILIO" "${args[@]}" >"$RUN_DIR/kamailio.log" 2>&1 </dev/null &
echo $! >"$RUN_DIR/kamailio.pid"

# ready when it answers an OPTIONS request (up to 20 s)
"$PYTHON" - "$SIP_PORT" "$(cat "$RUN_DIR/kamailio.pid")" <<'PY' || { tail -n 30 "$RUN_DIR/kamailio.log" >&2; exit 1; }
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("kamailio exited")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        me = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-{time.time_ns()}\r\n"
                  f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{port}>\r\n"
                  f"Call-ID: probe-{time.time_ns()}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
                 ("127.0.0.1", port))
        try:
            if s.recv(4096).startswith(b"SIP/2.0 200"):
                sys.exit(0)
        except OSError:
            pass
    time.sleep(0.2)
sys.exit("kamailio does not answer OPTIONS on 127.0.0.1:%d" % port)
PY
echo "127.0.0.1:$SIP_PORT"
