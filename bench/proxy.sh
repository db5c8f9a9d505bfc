#!/bin/bash
# bench/proxy.sh — httpd-core's ProxyPass vs nginx's proxy_pass to the same backend, in one run.
#
# Usage: bench/proxy.sh             (builds httpd-core --release first)
# Env:   DUR=5 ROUNDS=3 SERVER_CPU=0 CLIENT_CPU=1 SCEN="ka50 100k" OUT=/tmp/httpd-bench-proxy
#
# The backend is an nginx serving a 1 KiB page and a 100 KiB file (keep-alive, one worker,
# on the client CPU so both proxies see the same backend). Both proxies get one CPU
# (taskset -c $SERVER_CPU), no access log, and keep-alive connections to the backend
# (nginx: `upstream { keepalive 64; }` with HTTP/1.1; ours: its pooled client). wrk runs
# with one thread and 50 connections. Rounds are interleaved (ours, nginx, ...) and the
# medians compared: ratio = ours / nginx requests/s (goal >= 1.0), plus the errors
# (non-2xx or socket errors) wrk counted for each side.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; SCPU=${SERVER_CPU:-0}; CCPU=${CLIENT_CPU:-1}
SCEN=${SCEN:-"ka50 100k"}
OUT=${OUT:-/tmp/httpd-bench-proxy}
WWW=$OUT/www
for t in nginx wrk taskset python3 curl; do
  command -v "$t" >/dev/null || { echo "proxy.sh: $t is required" >&2; exit 2; }
done
mkdir -p "$OUT" "$WWW" "$OUT/nginx-tmp" "$OUT/backend-tmp"
ulimit -n "$(ulimit -Hn)"
[ -f "$WWW/index.html" ] || {
  python3 -c "print('<!DOCTYPE html><html><body>' + 'x' * 990 + '</body></html>')" > "$WWW/index.html"
  head -c 102400 /dev/urandom > "$WWW/100k.bin"
}

echo "building httpd-core (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet -p httpd-core)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OURS_BIN=$TARGET/release/httpd-core

BACKEND_PORT=18290; OURS_PORT=18291; NGINX_PORT=18292
temps() {
  local d=$1
  echo "client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fastcgi;"
  echo "uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;"
}
cat > "$OUT/backend.conf" <<CONF
worker_processes 1;
daemon off;
pid $OUT/backend.pid;
error_log $OUT/backend-error.log warn;
events { worker_connections 4096; }
http {
    access_log off; sendfile on; keepalive_requests 1000000; keepalive_timeout 120s;
    $(temps "$OUT/backend-tmp")
    server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; root $WWW; }
}
CONF
cat > "$OUT/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
    $(temps "$OUT/nginx-tmp")
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF
cat > "$OUT/httpd.conf" <<CONF
Listen 127.0.0.1:$OURS_PORT
DocumentRoot "$WWW"
KeepAliveTimeout 120
MaxKeepAliveRequests 0
ProxyPass / http://127.0.0.1:$BACKEND_PORT/
CONF

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c "$CCPU" nginx -p "$OUT" -c "$OUT/backend.conf" 2>"$OUT/backend.err" & PIDS+=($!)
taskset -c "$SCPU" "$OURS_BIN" -f "$OUT/httpd.conf" 2>"$OUT/ours.err" & PIDS+=($!)
taskset -c "$SCPU" nginx -p "$OUT" -c "$OUT/nginx.conf" 2>"$OUT/nginx.err" & PIDS+=($!)
for port in $BACKEND_PORT $OURS_PORT $NGINX_PORT; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.1; done
done

# run SCENARIO PORT -> "reqs/s errors"
run() {
  local s=$1 base="http://127.0.0.1:$2" path
  case $s in
    ka50) path=/index.html ;;
    100k) path=/100k.bin ;;
  esac
  taskset -c "$CCPU" wrk -t1 -c50 -d"${DUR}s" --timeout 5s "$base$path" 2>&1 | awk '
    /Requests\/sec/ { rps = $2 }
    /Non-2xx/ { err += $NF }
    /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    END { printf "%s %d\n", rps, err }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf "%-7s %14s %14s %8s %12s %12s\n" scenario "ours req/s" "nginx req/s" ratio "ours errors" "nginx errors" | tee "$OUT/summary.txt"
for s in $SCEN; do
  : > "$OUT/$s.ours"; : > "$OUT/$s.nginx"
  run "$s" $OURS_PORT >/dev/null; run "$s" $NGINX_PORT >/dev/null   # warm-up
  for _ in $(seq "$ROUNDS"); do
    run "$s" $OURS_PORT >> "$OUT/$s.ours"
    run "$s" $NGINX_PORT >> "$OUT/$s.nginx"
  done
  o=$(cut -d' ' -f1 "$OUT/$s.ours" | median); n=$(cut -d' ' -f1 "$OUT/$s.nginx" | median)
  oe=$(awk '{ t += $2 } END { print t + 0 }' "$OUT/$s.ours"); ne=$(awk '{ t += $2 } END { print t + 0 }' "$OUT/$s.nginx")
  awk -v s="$s" -v o="$o" -v n="$n" -v oe="$oe" -v ne="$ne" 'BEGIN {
    printf "%-7s %14.0f %14.0f %8.2f %12d %12d\n", s, o, n, (n > 0 ? o / n : 0), oe, ne }' \
    | tee -a "$OUT/summary.txt"
done
echo "results in $OUT/summary.txt" >&2
