#!/bin/bash
# bench/static.sh — httpd-core vs nginx serving static files, side by side in one run.
#
# Usage: bench/static.sh            (builds httpd-core --release first)
# Env:   DUR=5 ROUNDS=3 SERVER_CPU=0 CLIENT_CPU=1 SCEN="ka50 ka500 close 100k 10m 404"
#        IDLE=10000 (idle connections for the memory row; 0 skips it) OUT=/tmp/httpd-bench
#        PORT=18180 (ours; nginx takes PORT+1, so two benches can run at once with other PORT/OUT)
#
# Both servers get one CPU (taskset -c $SERVER_CPU; nginx with one worker, sendfile on, no
# access log; httpd-core with no access log), the same docroot, and wrk runs on another CPU
# with one thread. Rounds are interleaved (ours, nginx, ours, nginx, ...) and the medians
# are compared: ratio = ours / nginx for requests/s (higher is better) and p99 latency
# (lower is better), and errors (ours/nginx: non-2xx responses plus wrk's socket errors,
# summed over the rounds; a short body shows as a read error). Memory: RSS growth per connection with $IDLE idle keep-alive
# connections, each having made one request (and the marginal cost over the second half:
# see bench/idle.py), and with $IDLE connections that have sent nothing yet.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}
SCEN=${SCEN:-"ka50 ka500 close 100k 10m 404"}
IDLE=${IDLE:-10000}
OUT=${OUT:-/tmp/httpd-bench}
WWW=$OUT/www
bench_need static.sh nginx wrk taskset python3 curl ss
mkdir -p "$OUT"
bench_docroot "$WWW" 1   # a 1 KiB page, a 100 KiB and a 10 MiB file
bench_build httpd-core
OURS_BIN=$(bench_bin httpd-core)

OURS_PORT=${PORT:-18180}; NGINX_PORT=$((OURS_PORT + 1))
cat > "$OUT/httpd.conf" <<CONF
Listen 127.0.0.1:$OURS_PORT
DocumentRoot "$WWW"
KeepAliveTimeout 120
MaxKeepAliveRequests 0
MaxRequestWorkers 20000
CONF
{ nginx_main nginx "$OUT"; echo "access_log off;"
  echo "server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $WWW; } }"; } > "$OUT/nginx.conf"
bench_start "$SCPU" ours $OURS_PORT "$OUT" "$OURS_BIN" -f "$OUT/httpd.conf"; OURS_PID=$BENCH_PID
bench_start "$SCPU" nginx $NGINX_PORT "$OUT" nginx -p "$OUT" -c "$OUT/nginx.conf"; NGINX_PID=$BENCH_PID

# run SCENARIO PORT -> "reqs/s p99_ms errors"
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
  local ok=0; [ "$s" = 404 ] && ok=1   # a 404 is the answer there, not an error
  WRK_NON2XX_OK=$ok wrk_run -d"${DUR}s" "${args[@]}"
}

{ echo "settings: both servers on CPU $SCPU (taskset), wrk -t1 on CPU $CCPU; DUR=${DUR}s ROUNDS=$ROUNDS, interleaved, medians;"
  echo "  nginx: 1 worker, access_log off, sendfile on, keepalive 120 s / 1000000 requests;"
  echo "  ours: current-thread runtime (one CPU), no CustomLog, KeepAliveTimeout 120, MaxKeepAliveRequests 0,"
  echo "        AcceptFilter on by default (a connection that has sent nothing waits in the kernel, not in ours)"; } | tee "$OUT/settings.txt"
printf "%-7s %14s %14s %8s %12s %12s %8s %10s\n" scenario "ours req/s" "nginx req/s" ratio "ours p99 ms" "nginx p99" ratio "errors" | tee "$OUT/summary.txt"
for s in $SCEN; do
  : > "$OUT/$s.ours"; : > "$OUT/$s.nginx"
  run "$s" $OURS_PORT >/dev/null; run "$s" $NGINX_PORT >/dev/null   # warm-up
  for _ in $(seq "$ROUNDS"); do
    run "$s" $OURS_PORT >> "$OUT/$s.ours"
    run "$s" $NGINX_PORT >> "$OUT/$s.nginx"
  done
  o=$(cut -d' ' -f1 "$OUT/$s.ours" | median); n=$(cut -d' ' -f1 "$OUT/$s.nginx" | median)
  ol=$(cut -d' ' -f2 "$OUT/$s.ours" | median); nl=$(cut -d' ' -f2 "$OUT/$s.nginx" | median)
  oe=$(awk '{ e += $3 } END { print e + 0 }' "$OUT/$s.ours"); ne=$(awk '{ e += $3 } END { print e + 0 }' "$OUT/$s.nginx")
  awk -v s="$s" -v o="$o" -v n="$n" -v ol="$ol" -v nl="$nl" -v e="$oe/$ne" 'BEGIN {
    printf "%-7s %14.0f %14.0f %8.2f %12.2f %12.2f %8.2f %10s\n", s, o, n, (n > 0 ? o / n : 0), ol, nl, (nl > 0 ? ol / nl : 0), e }' \
    | tee -a "$OUT/summary.txt"
done

# Memory per idle connection.
if [ "$IDLE" -gt 0 ]; then
  o=$(idle_rss $OURS_PORT "$OURS_PID" "$IDLE"); n=$(idle_rss $NGINX_PORT "$NGINX_PID" "$IDLE")
  read -r oc ob om os <<< "$o"; read -r nc nb nm ns <<< "$n"
  echo "idle    ours: $oc connections, $ob B/conn ($om marginal; $os before a request); nginx: $nc connections, $nb B/conn ($nm marginal; $ns before a request)" | tee -a "$OUT/summary.txt"
  awk -v o="$ob" -v n="$nb" -v om="$om" -v nm="$nm" -v os="$os" -v ns="$ns" 'BEGIN { if (n > 0 && nm > 0 && ns > 0) printf "idle    memory ratio ours/nginx = %.2f, marginal %.2f, before a request %.2f (lower is better)\n", o / n, om / nm, os / ns }' | tee -a "$OUT/summary.txt"
fi
echo "results in $OUT/summary.txt" >&2
