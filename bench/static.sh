#!/bin/bash
# bench/static.sh — httpd-core vs nginx serving static files, side by side in one run.
#
# Usage: bench/static.sh            (builds httpd-core --release first)
# Env:   DUR=5 ROUNDS=3 SERVER_CPU=0 CLIENT_CPU=1 SCEN="ka50 ka500 close 100k 10m 404"
#        IDLE=10000 (idle connections for the memory row; 0 skips it) OUT=/tmp/httpd-bench
#
# Both servers get one CPU (taskset -c $SERVER_CPU; nginx with one worker, sendfile on, no
# access log; httpd-core with no access log), the same docroot, and wrk runs on another CPU
# with one thread. Rounds are interleaved (ours, nginx, ours, nginx, ...) and the medians
# are compared: ratio = ours / nginx for requests/s (higher is better) and p99 latency
# (lower is better). Memory: RSS growth per connection with $IDLE idle keep-alive
# connections, each having made one request.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; SCPU=${SERVER_CPU:-0}; CCPU=${CLIENT_CPU:-1}
SCEN=${SCEN:-"ka50 ka500 close 100k 10m 404"}
IDLE=${IDLE:-10000}
OUT=${OUT:-/tmp/httpd-bench}
WWW=$OUT/www
for t in nginx wrk taskset python3 curl; do
  command -v "$t" >/dev/null || { echo "static.sh: $t is required" >&2; exit 2; }
done
mkdir -p "$OUT" "$WWW" "$OUT/nginx-tmp"
ulimit -n "$(ulimit -Hn)"

# The docroot: a 1 KiB page, a 100 KiB and a 10 MiB file.
[ -f "$WWW/index.html" ] || {
  python3 -c "print('<!DOCTYPE html><html><body>' + 'x' * 990 + '</body></html>')" > "$WWW/index.html"
  head -c 102400 /dev/urandom > "$WWW/100k.bin"
  head -c 10485760 /dev/urandom > "$WWW/10m.bin"
}

echo "building httpd-core (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet -p httpd-core)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OURS_BIN=$TARGET/release/httpd-core

OURS_PORT=18180; NGINX_PORT=18181
cat > "$OUT/httpd.conf" <<CONF
Listen 127.0.0.1:$OURS_PORT
DocumentRoot "$WWW"
KeepAliveTimeout 120
MaxKeepAliveRequests 0
MaxRequestWorkers 20000
CONF
cat > "$OUT/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 19000; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    client_body_temp_path $OUT/nginx-tmp/body;
    proxy_temp_path $OUT/nginx-tmp/proxy;
    fastcgi_temp_path $OUT/nginx-tmp/fastcgi;
    uwsgi_temp_path $OUT/nginx-tmp/uwsgi;
    scgi_temp_path $OUT/nginx-tmp/scgi;
    server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $WWW; }
}
CONF

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c "$SCPU" "$OURS_BIN" -f "$OUT/httpd.conf" 2>"$OUT/ours.err" & PIDS+=($!)
taskset -c "$SCPU" nginx -p "$OUT" -c "$OUT/nginx.conf" 2>"$OUT/nginx.err" & PIDS+=($!)
for port in $OURS_PORT $NGINX_PORT; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.1; done
done

# run SCENARIO PORT -> "reqs/s p99_ms"
run() {
  local s=$1 port=$2 base="http://127.0.0.1:$2" args
  case $s in
    ka50)  args=(-c50 "$base/index.html") ;;
    ka500) args=(-c500 "$base/index.html") ;;
    close) args=(-c50 -H 'Connection: close' "$base/index.html") ;;
    100k)  args=(-c50 "$base/100k.bin") ;;
    10m)   args=(-c10 "$base/10m.bin") ;;
    404)   args=(-c50 "$base/no-such-file") ;;
  esac
  taskset -c "$CCPU" wrk -t1 -d"${DUR}s" --timeout 5s --latency "${args[@]}" 2>&1 | awk '
    /Requests\/sec/ { rps = $2 }
    /^ *99%/ { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
               ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
    END { printf "%s %s\n", rps, ms }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf "%-7s %14s %14s %8s %12s %12s %8s\n" scenario "ours req/s" "nginx req/s" ratio "ours p99 ms" "nginx p99" ratio | tee "$OUT/summary.txt"
for s in $SCEN; do
  : > "$OUT/$s.ours"; : > "$OUT/$s.nginx"
  run "$s" $OURS_PORT >/dev/null; run "$s" $NGINX_PORT >/dev/null   # warm-up
  for _ in $(seq "$ROUNDS"); do
    run "$s" $OURS_PORT >> "$OUT/$s.ours"
    run "$s" $NGINX_PORT >> "$OUT/$s.nginx"
  done
  o=$(cut -d' ' -f1 "$OUT/$s.ours" | median); n=$(cut -d' ' -f1 "$OUT/$s.nginx" | median)
  ol=$(cut -d' ' -f2 "$OUT/$s.ours" | median); nl=$(cut -d' ' -f2 "$OUT/$s.nginx" | median)
  awk -v s="$s" -v o="$o" -v n="$n" -v ol="$ol" -v nl="$nl" 'BEGIN {
    printf "%-7s %14.0f %14.0f %8.2f %12.2f %12.2f %8.2f\n", s, o, n, (n > 0 ? o / n : 0), ol, nl, (nl > 0 ? ol / nl : 0) }' \
    | tee -a "$OUT/summary.txt"
done

# Memory per idle connection.
if [ "$IDLE" -gt 0 ]; then
  python3 - "$IDLE" "$OURS_PORT" "${PIDS[0]}" "$NGINX_PORT" "$(cat "$OUT/nginx.pid" 2>/dev/null || echo 0)" <<'PY' | tee -a "$OUT/summary.txt"
import os, resource, socket, sys, time
n = int(sys.argv[1]); targets = [("ours", int(sys.argv[2]), int(sys.argv[3])), ("nginx", int(sys.argv[4]), int(sys.argv[5]))]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss(pid):
    # The process and its children (nginx's worker is a child of its master).
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"): total += int(line.split()[1])
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError): pass
    return total
res = {}
for name, port, pid in targets:
    if pid <= 0: continue
    before = rss(pid); socks = []
    req = f"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(n):
        try: s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError: break
        s.sendall(req); buf = b""
        while b"</html>" not in buf:
            c = s.recv(65536)
            if not c: break
            buf += c
        socks.append(s)
    time.sleep(2)
    after = rss(pid)
    res[name] = (after - before) * 1024 / max(len(socks), 1)
    print(f"idle    {name}: {len(socks)} connections, RSS {before} -> {after} KiB, {res[name]:.0f} B/conn")
    for s in socks: s.close()
    time.sleep(1)
if "ours" in res and "nginx" in res and res["nginx"] > 0:
    print(f"idle    memory ratio ours/nginx = {res['ours'] / res['nginx']:.2f} (lower is better)")
PY
fi
echo "results in $OUT/summary.txt" >&2
