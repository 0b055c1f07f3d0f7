#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379 (the tests' broker); start one if none does.
set -euo pipefail
port="${REDIS_PORT:-6379}"
ping() { python3 - "$port" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG"); s.close()
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}
if ping; then exit 0; fi
if ! command -v redis-server >/dev/null; then
  echo "redis-server not found: installing Debian's redis-server" >&2
  (apt-get update -qq && apt-get install -y -qq redis-server) >&2
fi
echo "starting redis-server on 127.0.0.1:$port" >&2
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir /tmp --logfile /tmp/seqq-redis-$port.log
for _ in $(seq 1 50); do ping && exit 0; sleep 0.1; done
echo "redis-server did not answer on 127.0.0.1:$port" >&2
exit 1
