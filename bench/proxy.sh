#!/bin/bash
# bench/proxy.sh — httpd-core's ProxyPass vs nginx's proxy_pass to the same backend, in one run.
#
# Usage: bench/proxy.sh             (builds httpd-core --release first)
# Env:   DUR=5 ROUNDS=3 SERVER_CPU=0 CLIENT_CPU=1 SCEN="ka50 100k" OUT=/tmp/httpd-bench-proxy
#        PORT=18290 (the backend; ours takes PORT+1, nginx PORT+2)
#
# The backend is an nginx serving a 1 KiB page and a 100 KiB file (keep-alive, one worker,
# on the client CPU so both proxies see the same backend). Both proxies get one CPU
# (taskset -c $SERVER_CPU), no access log, and keep-alive connections to the backend
# (nginx: `upstream { keepalive 64; }` with HTTP/1.1; ours: its pooled client), and both
# send the backend the same forwarding headers (X-Forwarded-For/-Host/-Server/-Proto and
# Forwarded, as Apache's mod_proxy and issue 4 ask; nginx was given only X-Forwarded-For
# before, a 65-byte backend request against our ~200). wrk runs
# with one thread and 50 connections. Rounds are interleaved (ours, nginx, ...) and the
# medians compared: ratio = ours / nginx requests/s (goal >= 1.0), plus the errors
# (non-2xx or socket errors) wrk counted for each side.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}
SCEN=${SCEN:-"ka50 100k"}
OUT=${OUT:-/tmp/httpd-bench-proxy}
WWW=$OUT/www
bench_need proxy.sh nginx wrk taskset python3 curl ss
mkdir -p "$OUT"
bench_docroot "$WWW"
bench_build httpd-core
OURS_BIN=$(bench_bin httpd-core)

BACKEND_PORT=${PORT:-18290}; OURS_PORT=$((BACKEND_PORT + 1)); NGINX_PORT=$((BACKEND_PORT + 2))
{ nginx_main backend "$OUT"; echo "access_log off;"
  echo "server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; root $WWW; } }"; } > "$OUT/backend.conf"
{ nginx_main nginx "$OUT"; cat <<CONF
    access_log off;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same forwarding headers httpd-core sends (mod_proxy's, and RFC 7239's
            # Forwarded), so both proxies build and send the same request.
            proxy_set_header Host \$proxy_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Server httpd;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\\"\$http_host\\"";
        }
    }
}
CONF
} > "$OUT/nginx.conf"
cat > "$OUT/httpd.conf" <<CONF
Listen 127.0.0.1:$OURS_PORT
DocumentRoot "$WWW"
KeepAliveTimeout 120
MaxKeepAliveRequests 0
ProxyPass / http://127.0.0.1:$BACKEND_PORT/
CONF
bench_start "$CCPU" backend $BACKEND_PORT "$OUT" nginx -p "$OUT" -c "$OUT/backend.conf"
bench_start "$SCPU" ours $OURS_PORT "$OUT" "$OURS_BIN" -f "$OUT/httpd.conf"
bench_start "$SCPU" nginx $NGINX_PORT "$OUT" nginx -p "$OUT" -c "$OUT/nginx.conf"

# run SCENARIO PORT -> "reqs/s errors"
run() {
  local s=$1 base="http://127.0.0.1:$2" path
  case $s in
    ka50) path=/index.html ;;
    100k) path=/100k.bin ;;
  esac
  wrk_run -c50 -d"${DUR}s" "$base$path" | cut -d" " -f1,3
}

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
