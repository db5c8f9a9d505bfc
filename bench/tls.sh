#!/usr/bin/env bash
# bench/tls.sh — httpd-tls against hitch and nginx's own TLS, side by side in one run.
#
# The same ECDSA P-256 certificate, the same 1 KiB file, TLS 1.3 only everywhere, every
# server pinned to CPU $SERVER_CPU (default 0), the load generator to $CLIENT_CPU (1):
#   ours       httpd-tls (release build) --proxy-protocol v2 -> httpd-core (release build,
#              RemoteIPProxyProtocol On; BACKEND=nginx: the same nginx backend hitch uses)
#   hitch      hitch (1 worker, write-proxy-v2)            -> nginx (plain, proxy_protocol)
#   nginx      nginx terminating TLS itself
# Both terminators send a PROXY v2 header to their backend, over a Unix socket (LINK=unix, the
# default: both sides of each pair share one machine) or loopback TCP (LINK=tcp). For the h2 row they offer ALPN h2
# only: hitch forwards to an nginx h2c listener (proxy_protocol); httpd-core serves a PROXY
# header saying ALPN h2 as HTTP/2 (with BACKEND=nginx, ours uses the nginx h2c listener too).
# Rows: ka50 (wrk -c50 keep-alive), close (wrk -c50 'Connection: close': a new TLS connection
# per request; wrk resumes the session, so these are resumed TLS 1.3 handshakes), full (ab -c50:
# new connection per request, no resumption: full handshakes), h2 (h2load -c50 -m10).
# ROUNDS rounds, servers interleaved within each round, DUR seconds each; prints medians and
# ours/peer ratios.
#
# Usage: bench/tls.sh            Env: DUR=5 ROUNDS=3 SCEN="ka50 close full h2" SERVER_CPU=0
#                                     CLIENT_CPU=1 WORK=/tmp/httpd-bench-tls BACKEND=core|nginx
#                                     LINK=unix|tcp
# Needs: nginx, hitch, wrk, ab (apache2-utils), h2load (nghttp2-client), openssl, cargo.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; SCEN=${SCEN:-"ka50 close full h2"}
WORK=${WORK:-/tmp/httpd-bench-tls}
BACKEND=${BACKEND:-core}
LINK=${LINK:-unix}
P_BACK=19081 P_BACK_H2=19091 P_CORE=19082 P_NGINX=19443 P_HITCH=19444 P_HITCH_H2=19445 P_OURS=19446 P_OURS_H2=19447

bench_need tls.sh nginx hitch wrk ab h2load openssl cargo ss
mkdir -p "$WORK/www" "$WORK/run" "$WORK/raw"
bench_build httpd-tls httpd-core
OURS_BIN=$(bench_bin httpd-tls)
CORE_BIN=$(bench_bin httpd-core)
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
bench_cert "$WORK/tls"

{ nginx_main nginx "$WORK/run"; cat <<EOF
    access_log off;
    server {
        listen 127.0.0.1:$P_BACK proxy_protocol backlog=4096;
        listen unix:$WORK/run/nginx.sock proxy_protocol backlog=4096;
        root $WORK/www;
    }
    server {
        listen 127.0.0.1:$P_BACK_H2 proxy_protocol http2 backlog=4096;
        listen unix:$WORK/run/nginx-h2.sock proxy_protocol http2 backlog=4096;
        root $WORK/www;
    }
    server {
        listen 127.0.0.1:$P_NGINX ssl http2 backlog=4096;
        ssl_certificate     $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.3;
        root $WORK/www;
    }
}
EOF
} > "$WORK/run/nginx.conf"
hitch_conf() { # PORT BACKEND ALPN
  cat <<EOF
frontend = "[127.0.0.1]:$1"
backend = "$2"
pem-file = "$WORK/tls/combined.pem"
tls-protos = TLSv1.3
alpn-protos = "$3"
write-proxy-v2 = on
workers = 1
backlog = 4096
daemon = off
user = "nobody"
log-level = 0
EOF
}
# link NAME PORT — the backend address of one pair: a socket in $WORK/run or a port.
link() { if [ "$LINK" = unix ]; then echo "$WORK/run/$1.sock"; else echo "[127.0.0.1]:$2"; fi; }
rm -f "$WORK/run/"*.sock
hitch_conf $P_HITCH "$(link nginx $P_BACK)" "http/1.1" > "$WORK/run/hitch.conf"
hitch_conf $P_HITCH_H2 "$(link nginx-h2 $P_BACK_H2)" "h2" > "$WORK/run/hitch-h2.conf"

start() { bench_start "$SCPU" "$1" "$2" "$WORK/run" "${@:3}"; }   # NAME PORT CMD...
start nginx $P_NGINX nginx -p "$WORK/run" -c "$WORK/run/nginx.conf"
start hitch $P_HITCH hitch --config="$WORK/run/hitch.conf"
start hitch-h2 $P_HITCH_H2 hitch --config="$WORK/run/hitch-h2.conf"
cat > "$WORK/run/core.conf" <<EOF
Listen 127.0.0.1:$P_CORE
Listen unix:$WORK/run/core.sock
DocumentRoot "$WORK/www"
RemoteIPProxyProtocol On
KeepAliveTimeout 120
MaxKeepAliveRequests 0
MaxRequestWorkers 20000
EOF
if [ "$BACKEND" = core ]; then
  start core $P_CORE "$CORE_BIN" -f "$WORK/run/core.conf"
  OURS_BACK=$(link core $P_CORE) OURS_BACK_H2=$OURS_BACK
else
  OURS_BACK=$(link nginx $P_BACK) OURS_BACK_H2=$(link nginx-h2 $P_BACK_H2)
fi
# httpd-tls spells the backend unix:/path or HOST:PORT.
OURS_BACK=$(sed -E 's#^/#unix:/#; s#^\[([^]]+)\]#\1#' <<<"$OURS_BACK")
OURS_BACK_H2=$(sed -E 's#^/#unix:/#; s#^\[([^]]+)\]#\1#' <<<"$OURS_BACK_H2")
ours=(--cert "$WORK/tls/cert.pem" --key "$WORK/tls/key.pem" --min-tls 1.3 --proxy-protocol v2)
start ours $P_OURS "$OURS_BIN" --listen 127.0.0.1:$P_OURS --backend "$OURS_BACK" --alpn http/1.1 "${ours[@]}"
start ours-h2 $P_OURS_H2 "$OURS_BIN" --listen 127.0.0.1:$P_OURS_H2 --backend "$OURS_BACK_H2" --alpn h2 "${ours[@]}"

for p in $P_OURS $P_HITCH $P_NGINX; do
  curl -sk -o /dev/null --fail --max-time 5 "https://127.0.0.1:$p/index.html" \
    || { echo "no answer on :$p" >&2; exit 1; }
done

url() { # SCEN SERVER
  case $1:$2 in
    h2:ours) echo "https://127.0.0.1:$P_OURS_H2/index.html" ;;
    h2:hitch) echo "https://127.0.0.1:$P_HITCH_H2/index.html" ;;
    *:ours) echo "https://127.0.0.1:$P_OURS/index.html" ;;
    *:hitch) echo "https://127.0.0.1:$P_HITCH/index.html" ;;
    *:nginx) echo "https://127.0.0.1:$P_NGINX/index.html" ;;
  esac
}
measure() { # SCEN URL DURATION -> prints requests/s
  local c=(taskset -c "$CCPU")
  case $1 in
    ka50) "${c[@]}" wrk -t1 -c50 -d"$3s" "$2" | awk '/^Requests\/sec/ {print $2}' ;;
    close) "${c[@]}" wrk -t1 -c50 -d"$3s" -H 'Connection: close' "$2" | awk '/^Requests\/sec/ {print $2}' ;;
    full) "${c[@]}" ab -q -c50 -t"$3" -n1000000 "$2" 2>/dev/null | awk '/^Requests per second/ {print $4}' ;;
    h2) "${c[@]}" h2load -t1 -c50 -m10 -D"$3" "$2" | awk '/^finished in/ {print $4}' ;;
  esac
}

SERVERS="ours hitch nginx"
echo "date $(date -Is); $(nproc) CPUs; servers on CPU $SCPU, client on CPU $CCPU; DUR=${DUR}s ROUNDS=$ROUNDS"
echo "ours: $OURS_BIN -> $BACKEND ($OURS_BACK); hitch -> $(link nginx $P_BACK); $(nginx -v 2>&1); $(hitch --version 2>&1 | head -1)"
echo "settings: TLS 1.3 only, one ECDSA P-256 cert; every server on CPU $SCPU, client on CPU $CCPU; no access logs;"
echo "  keep-alive 120 s and unlimited requests everywhere (nginx keepalive_requests 1000000, core MaxKeepAliveRequests 0);"
echo "  nginx 1 worker; hitch workers=1, write-proxy-v2; ours current-thread runtimes (one CPU each process);"
echo "  terminator -> backend over LINK=$LINK for both pairs"
: > "$WORK/raw/results.tsv"
for s in $SCEN; do
  for n in $SERVERS; do measure "$s" "$(url "$s" "$n")" 1 >/dev/null || true; done  # warm-up
  for r in $(seq "$ROUNDS"); do
    for n in $SERVERS; do
      v=$(measure "$s" "$(url "$s" "$n")" "$DUR" || true)
      printf '%s\t%s\t%s\t%s\n' "$s" "$n" "$r" "${v:-0}" >> "$WORK/raw/results.tsv"
      printf '%-6s r%s %-6s %s req/s\n' "$s" "$r" "$n" "${v:-0}"
    done
  done
done

BACKEND=$BACKEND python3 - "$WORK/raw/results.tsv" <<'EOF'
import os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
scen = list(dict.fromkeys(r[0] for r in rows))
med = {}
for s in scen:
    for n in ("ours", "hitch", "nginx"):
        v = [float(r[3]) for r in rows if r[0] == s and r[1] == n]
        med[s, n] = statistics.median(v) if v else float("nan")
print()
print(f"| row | ours (httpd-tls -> {os.environ.get('BACKEND', 'core')}) | hitch -> nginx | nginx TLS | ours/hitch | ours/nginx |")
print("|---|---:|---:|---:|---:|---:|")
for s in scen:
    o, h, n = med[s, "ours"], med[s, "hitch"], med[s, "nginx"]
    ratio = lambda a, b: f"{a / b:.2f}" if b else "-"
    print(f"| {s} | {o:,.0f} | {h:,.0f} | {n:,.0f} | {ratio(o, h)} | {ratio(o, n)} |")
EOF
