#!/usr/bin/env bash
# Start or stop LocalStack's S3 (installed by install-localstack.sh) for the real-S3 test tier.
#
#   bash infra/ci/localstack.sh start   # prints http://127.0.0.1:<port> once S3 answers
#   bash infra/ci/localstack.sh stop
#
# Network: the gateway listens on 127.0.0.1 only (hypercorn honours GATEWAY_LISTEN's host; the
# default twisted server does not), on a free port so concurrent runs do not collide;
# DNS_ADDRESS=0 turns off its DNS server, SKIP_SSL_CERT_DOWNLOAD and DISABLE_EVENTS stop its calls
# home. `start` then lists every socket the process listens on and refuses (stops it, exits 1)
# if any is not on loopback. S3_SKIP_SIGNATURE_VALIDATION=0 makes it check SigV4 signatures
# (presigned URLs included), which moto does not.
set -euo pipefail
VENV="${LOCALSTACK_VENV:-/tmp/localstack-venv}"
PIDFILE="${LOCALSTACK_PIDFILE:-/tmp/skyllama-localstack.pid}"
PY="$VENV/bin/python"

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$PIDFILE"
}

start() {
  if [ ! -x "$PY" ]; then
    echo "localstack: no venv at $VENV (bash infra/ci/install-localstack.sh)" >&2; exit 1
  fi
  stop
  local port log t0
  port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="${LOCALSTACK_LOG:-/tmp/skyllama-localstack-$port.log}"
  t0="$(date +%s)"
  SERVICES=s3 GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER=hypercorn DNS_ADDRESS=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 S3_SKIP_SIGNATURE_VALIDATION=0 \
    "$PY" -m localstack.runtime.main >"$log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local url="http://127.0.0.1:$port"
  local ready=""
  for _ in $(seq 300); do  # 60 s: it is ready in ~5 s on two cores
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "localstack: exited during start-up (log: $log)" >&2; tail -5 "$log" >&2; rm -f "$PIDFILE"; exit 1
    fi
    if "$PY" - "$url" <<'EOF' 2>/dev/null; then ready=1; break; fi
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=2) as r:
    sys.exit(json.load(r)["services"].get("s3") not in ("available", "running"))
EOF
    sleep 0.2
  done
  if [ -z "$ready" ]; then
    echo "localstack: S3 not healthy after 60 s (log: $log)" >&2; tail -5 "$log" >&2; stop; exit 1
  fi
  # Everything it listens on (TCP and UDP, child processes too) must be loopback.
  if ! "$PY" - "$(cat "$PIDFILE")" <<'EOF' >&2; then
import sys, psutil
root = psutil.Process(int(sys.argv[1]))
socks = [c for p in [root, *root.children(recursive=True)] for c in p.net_connections("inet")
         if c.status == psutil.CONN_LISTEN or (c.status == psutil.CONN_NONE and not c.raddr)]
bad = [f"{c.laddr.ip}:{c.laddr.port}" for c in socks if not c.laddr.ip.startswith("127.")]
print(f"localstack: listening on {sorted({f'{c.laddr.ip}:{c.laddr.port}' for c in socks})}")
sys.exit(f"localstack: not loopback only: {bad}" if bad or not socks else 0)
EOF
    stop; exit 1
  fi
  echo "localstack: S3 ready at $url after $(( $(date +%s) - t0 )) s (log: $log)" >&2
  echo "$url"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
