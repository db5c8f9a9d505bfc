#!/usr/bin/env bash
# bench/all.sh — httpd against the servers you would otherwise pick, every row in one run.
#
#   bench/all.sh [--quick] [--rounds N] [--dur SECS] [--access-log on|off] [--out DIR]
#                [--rows "static-1k static-100k ..."] [--no-install]
#
# Installs what is missing (apt: nginx apache2 hitch goaccess wrk nghttp2-client
# apache2-utils), builds our binaries (release), then measures each row with httpd and each
# peer side by side, on the same files, every server pinned to CPU $SERVER_CPU (default 0)
# and every client to CPU $CLIENT_CPU (1), interleaved (ours, peer, ours, peer, ...) in
# several short rounds:
#
#   static-1k, static-100k   wrk -c50 keep-alive               httpd-core | nginx
#   proxy-1k                 wrk -c50 through a reverse proxy   httpd-core | nginx   (backend: nginx on the client CPU)
#   tls-1k                   wrk -c50 keep-alive over TLS 1.3   httpd-tls->core | hitch->nginx | nginx
#   tls-handshake            ab -c50, a full handshake each     httpd-tls->core | hitch->nginx | nginx
#   h2c                      h2load -c10 -m10 (HTTP/2 cleartext) httpd-core | nginx
#   h2-tls                   h2load -c10 -m10 over TLS (ALPN h2) httpd-tls->core | nginx
#   idle-conn                RSS per idle keep-alive connection httpd-core | nginx
#   config-check             N virtual hosts                   httpd-conftest | apache2 -t
#   log-rotation             piping a combined log              httpd-logrotate | rotatelogs
#   log-stats                analysing a combined log           httpd-logrotate --stats | goaccess
#
# Prints one table (median, min–max, ratio; "ratio > 1" always means httpd is better) and
# marks rows "noisy" where a server's min–max spread exceeds NOISY (default 0.25) of its
# median: the machine was too busy for that row to be trusted. Writes the raw numbers to
# OUT/results.json. About 5½ minutes on 2 cores (measured under load 7-10); --quick about
# 1½. BENCH_BUILD=0 skips the cargo build (use the binaries already built).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"

ROUNDS=3 DUR=3 IDLE=5000 VHOSTS=5000 LOG_LINES=1000000 STATS_LINES=200000
ACCESS_LOG=off INSTALL=1 NOISY=${NOISY:-0.25}
OUT=${OUT:-/tmp/httpd-bench-all}
ROWS="static-1k static-100k proxy-1k tls-1k tls-handshake h2c h2-tls idle-conn config-check log-rotation log-stats"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) ROUNDS=2 DUR=1 IDLE=1000 VHOSTS=1000 LOG_LINES=200000 STATS_LINES=50000 ;;
    --rounds) ROUNDS=$2; shift ;;
    --dur) DUR=$2; shift ;;
    --access-log) ACCESS_LOG=$2; shift ;;
    --out) OUT=$2; shift ;;
    --rows) ROWS=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    *) echo "all.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case $ACCESS_LOG in on|off) ;; *) echo "all.sh: --access-log on|off" >&2; exit 2 ;; esac

# Install what is missing: tool -> Debian package.
if [ "$INSTALL" = 1 ]; then
  missing=()
  for pair in nginx:nginx apache2:apache2 hitch:hitch goaccess:goaccess wrk:wrk h2load:nghttp2-client \
              ab:apache2-utils rotatelogs:apache2-utils openssl:openssl curl:curl python3:python3 \
              taskset:util-linux ss:iproute2; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
bench_need all.sh nginx apache2 hitch goaccess wrk h2load ab rotatelogs openssl curl python3 taskset ss

START=$(date +%s)
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
RUN=$OUT/run; WWW=$OUT/www; TLS=$OUT/tls; DATA=$OUT/data
rm -rf "$RUN"; mkdir -p "$RUN" "$WWW" "$TLS" "$DATA" "$OUT/logs"
bench_build httpd-core httpd-tls httpd-conftest httpd-logrotate
CORE=$(bench_bin httpd-core); TLSD=$(bench_bin httpd-tls)
CONFTEST=$(bench_bin httpd-conftest); ROTATE=$(bench_bin httpd-logrotate)
bench_docroot "$WWW"
bench_cert "$TLS"

P_BACK=18700 P_OURS=18701 P_OURS_PP=18702 P_OURS_TLS=18703 P_OURS_H2=18704
P_NGINX=18710 P_NGINX_H2C=18711 P_NGINX_PP=18712 P_NGINX_TLS=18713 P_HITCH=18714

if [ "$ACCESS_LOG" = on ]; then
  OURS_LOG="CustomLog \"$OUT/logs/ours-access.log\" combined"
  NGINX_LOG="access_log $OUT/logs/nginx-access.log combined;"
else
  OURS_LOG="" NGINX_LOG="access_log off;"
fi

# The backend behind both reverse proxies: nginx on the client CPU.
{ nginx_main backend "$RUN"; echo "access_log off;"
  echo "server { listen 127.0.0.1:$P_BACK backlog=4096; root $WWW; } }"; } > "$RUN/backend.conf"
# The nginx peer: static, h2c, reverse proxy, TLS (h2 and http/1.1), and the plain
# PROXY-protocol listener behind hitch.
{ nginx_main nginx "$RUN"; cat <<EOF
    $NGINX_LOG
    upstream backend { server 127.0.0.1:$P_BACK; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        listen 127.0.0.1:$P_NGINX_H2C http2 backlog=4096;
        root $WWW;
        location /proxy/ {
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The forwarding headers httpd-core sends (as in bench/proxy.sh).
            proxy_set_header Host \$proxy_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Server httpd;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\\"\$http_host\\"";
        }
    }
    server { listen 127.0.0.1:$P_NGINX_PP proxy_protocol backlog=4096; root $WWW; }
    server {
        listen 127.0.0.1:$P_NGINX_TLS ssl http2 backlog=4096;
        ssl_certificate $TLS/cert.pem;
        ssl_certificate_key $TLS/key.pem;
        ssl_protocols TLSv1.3;
        root $WWW;
    }
}
EOF
} > "$RUN/nginx.conf"
cat > "$RUN/hitch.conf" <<EOF
frontend = "[127.0.0.1]:$P_HITCH"
backend = "[127.0.0.1]:$P_NGINX_PP"
pem-file = "$TLS/combined.pem"
tls-protos = TLSv1.3
alpn-protos = "http/1.1"
write-proxy-v2 = on
workers = 1
backlog = 4096
daemon = off
user = "nobody"
log-level = 0
EOF
# Ours: one core for plain HTTP (static, h2c, proxy), one behind httpd-tls (PROXY v2).
cat > "$RUN/core.conf" <<EOF
Listen 127.0.0.1:$P_OURS
DocumentRoot "$WWW"
Protocols h2c http/1.1
KeepAliveTimeout 120
MaxKeepAliveRequests 0
MaxRequestWorkers 20000
ProxyPass /proxy/ http://127.0.0.1:$P_BACK/
$OURS_LOG
EOF
cat > "$RUN/core-pp.conf" <<EOF
Listen 127.0.0.1:$P_OURS_PP
DocumentRoot "$WWW"
KeepAliveTimeout 120
MaxKeepAliveRequests 0
MaxRequestWorkers 20000
RemoteIPProxyProtocol On
$OURS_LOG
EOF

declare -A PID
start_servers() {
  bench_start "$CCPU" backend $P_BACK "$RUN" nginx -p "$RUN" -c "$RUN/backend.conf"
  bench_start "$SCPU" nginx $P_NGINX "$RUN" nginx -p "$RUN" -c "$RUN/nginx.conf"; PID[nginx]=$BENCH_PID
  bench_start "$SCPU" hitch $P_HITCH "$RUN" hitch --config="$RUN/hitch.conf"
  bench_start "$SCPU" core $P_OURS "$RUN" "$CORE" -f "$RUN/core.conf"; PID[ours]=$BENCH_PID
  bench_start "$SCPU" core-pp $P_OURS_PP "$RUN" "$CORE" -f "$RUN/core-pp.conf"
  local tlsargs=(--cert "$TLS/cert.pem" --key "$TLS/key.pem" --min-tls 1.3 --proxy-protocol v2 --backend 127.0.0.1:$P_OURS_PP)
  bench_start "$SCPU" tls $P_OURS_TLS "$RUN" "$TLSD" --listen 127.0.0.1:$P_OURS_TLS --alpn http/1.1 "${tlsargs[@]}"
  bench_start "$SCPU" tls-h2 $P_OURS_H2 "$RUN" "$TLSD" --listen 127.0.0.1:$P_OURS_H2 --alpn h2 "${tlsargs[@]}"
  local u
  for u in http://127.0.0.1:$P_OURS/proxy/index.html http://127.0.0.1:$P_NGINX/proxy/index.html \
           https://127.0.0.1:$P_OURS_TLS/index.html https://127.0.0.1:$P_HITCH/index.html \
           https://127.0.0.1:$P_NGINX_TLS/index.html; do
    curl -sfk -o /dev/null --max-time 5 "$u" || { echo "all.sh: no answer from $u" >&2; exit 1; }
  done
  curl -sf -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$P_OURS/index.html" \
    || { echo "all.sh: no h2c answer from httpd-core" >&2; exit 1; }
}

# The servers of a row ("ours" first) and one measurement: measure ROW SERVER SECS prints
# one number (unit and direction in UNIT/BETTER below).
servers_of() {
  case $1 in
    tls-1k|tls-handshake) echo "ours hitch nginx" ;;
    config-check) echo "ours apache2" ;;
    log-rotation) echo "ours rotatelogs" ;;
    log-stats) echo "ours goaccess" ;;
    *) echo "ours nginx" ;;
  esac
}
declare -A UNIT=([idle-conn]="B/conn" [config-check]="s" [log-rotation]="lines/s" [log-stats]="s")
declare -A BETTER=([idle-conn]=lower [config-check]=lower [log-stats]=lower)
url() {
  case $1:$2 in
    static-1k:ours) echo "http://127.0.0.1:$P_OURS/index.html" ;;
    static-1k:nginx) echo "http://127.0.0.1:$P_NGINX/index.html" ;;
    static-100k:ours) echo "http://127.0.0.1:$P_OURS/100k.bin" ;;
    static-100k:nginx) echo "http://127.0.0.1:$P_NGINX/100k.bin" ;;
    proxy-1k:ours) echo "http://127.0.0.1:$P_OURS/proxy/index.html" ;;
    proxy-1k:nginx) echo "http://127.0.0.1:$P_NGINX/proxy/index.html" ;;
    h2c:ours) echo "http://127.0.0.1:$P_OURS/index.html" ;;
    h2c:nginx) echo "http://127.0.0.1:$P_NGINX_H2C/index.html" ;;
    h2-tls:ours) echo "https://127.0.0.1:$P_OURS_H2/index.html" ;;
    h2-tls:nginx|tls-*:nginx) echo "https://127.0.0.1:$P_NGINX_TLS/index.html" ;;
    tls-*:ours) echo "https://127.0.0.1:$P_OURS_TLS/index.html" ;;
    tls-*:hitch) echo "https://127.0.0.1:$P_HITCH/index.html" ;;
  esac
}
# error MSG — count a failed request, short write or failed command (measurements run in
# subshells, so the count lives in a file).
error() { echo "  $*" >&2; echo "$*" >> "$RUN/errors.txt"; }
measure() {
  local row=$1 srv=$2 secs=$3 r
  case $row in
    static-*|proxy-*|tls-1k)
      r=$(wrk_run -c50 -d"${secs}s" "$(url "$row" "$srv")")
      [ "${r##* }" = 0 ] || error "$row $srv: ${r##* } failed requests"
      echo "${r%% *}" ;;
    tls-handshake)
      taskset -c "$CCPU" ab -q -c50 -t"$secs" -n1000000 "$(url "$row" "$srv")" 2>/dev/null \
        | awk '/^Requests per second/ { print $4 }' ;;
    h2c|h2-tls)
      taskset -c "$CCPU" h2load -t1 -c10 -m10 -D"$secs" "$(url "$row" "$srv")" 2>/dev/null \
        | awk '/^finished in/ { print $4 }' ;;
    idle-conn)
      local port=$P_OURS; [ "$srv" = nginx ] && port=$P_NGINX
      r=$(taskset -c "$CCPU" python3 "$HERE/idle.py" "$port" "${PID[$srv]}" "$IDLE")
      [ "${r%% *}" = "$IDLE" ] || error "idle-conn $srv: only ${r%% *} of $IDLE connections"
      echo "$r" | cut -d' ' -f2 ;;   # the average (idle.py also gives the marginal cost)
    config-check)
      local cmd=("$CONFTEST" "$VHOSTS_CONF")
      [ "$srv" = apache2 ] && cmd=(apache2 -t -f "$VHOSTS_CONF")
      timed taskset -c "$SCPU" "${cmd[@]}" ;;
    log-rotation)
      local dir=/dev/shm/httpd-bench-all-rotate t
      rm -rf "$dir"; mkdir -p "$dir"
      local cmd=("$ROTATE" "$dir/access.%Y%m%d.log" --max-size 100M --fsync never)
      [ "$srv" = rotatelogs ] && cmd=(rotatelogs "$dir/access.%Y%m%d.log" 100M)
      t=$(timed sh -c 'c=$1 f=$2 s=$3; shift 3; taskset -c "$c" cat "$f" | taskset -c "$s" "$@"' _ \
        "$CCPU" "$ROT_LOG" "$SCPU" "${cmd[@]}")
      local got; got=$(cat "$dir"/* | wc -l); rm -rf "$dir"
      [ "$got" = "$LOG_LINES" ] || error "log-rotation $srv: wrote $got of $LOG_LINES lines"
      awk -v n="$LOG_LINES" -v t="$t" 'BEGIN { printf "%.0f\n", n / t }' ;;
    log-stats)
      local cmd=("$ROTATE" --stats --json "$STATS_LOG")
      [ "$srv" = goaccess ] && cmd=(goaccess "$STATS_LOG" --log-format=COMBINED -o "$RUN/goaccess.json")
      timed taskset -c "$SCPU" "${cmd[@]}" ;;
  esac
}
# timed CMD... — run it (output discarded), print its wall time in seconds. (row and srv
# are the calling measure's locals.)
timed() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1 || error "$row $srv: failed: $*"; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

RAW=$OUT/raw.tsv
: > "$RAW"
needs_servers=0
for row in $ROWS; do case $row in static-*|proxy-*|tls-*|h2*|idle-conn) needs_servers=1 ;; esac; done
[ "$needs_servers" = 1 ] && start_servers
case " $ROWS " in *" config-check "*) VHOSTS_CONF=$(gen_vhosts_conf "$VHOSTS" "$DATA/conftest") ;; esac
case " $ROWS " in *" log-rotation "*) ROT_LOG=$DATA/rotate-$LOG_LINES.log; gen_log "$ROT_LOG" "$LOG_LINES" ;; esac
case " $ROWS " in *" log-stats "*) STATS_LOG=$DATA/stats-$STATS_LINES.log; gen_log "$STATS_LOG" "$STATS_LINES" ;; esac

for row in $ROWS; do
  servers=$(servers_of "$row")
  case $row in idle-conn|config-check|log-*) ;; *)
    for s in $servers; do measure "$row" "$s" 1 >/dev/null; done ;;   # warm-up
  esac
  for r in $(seq "$ROUNDS"); do
    for s in $servers; do
      v=$(measure "$row" "$s" "$DUR"); v=${v:-0}
      printf '%s\t%s\t%s\t%s\n' "$row" "$s" "$r" "$v" >> "$RAW"
      printf '%-14s round %s  %-10s %s %s\n' "$row" "$r" "$s" "$v" "${UNIT[$row]:-req/s}" >&2
    done
  done
done
bench_stop_all
ELAPSED=$(( $(date +%s) - START ))
ERRORS=0; [ ! -f "$RUN/errors.txt" ] || ERRORS=$(wc -l < "$RUN/errors.txt")

export ROUNDS DUR IDLE VHOSTS LOG_LINES STATS_LINES ACCESS_LOG NOISY SCPU CCPU ELAPSED ERRORS
python3 - "$RAW" "$OUT/results.json" "$RUN/errors.txt" <<'PY'
import json, os, statistics, sys
failed = {}
if os.path.exists(sys.argv[3]):
    for line in open(sys.argv[3]):
        row, srv = line.split()[:2]
        failed.setdefault(row, set()).add(srv.rstrip(":"))
unit = {"idle-conn": "B/conn", "config-check": "s", "log-rotation": "lines/s", "log-stats": "s"}
lower = {"idle-conn", "config-check", "log-stats"}
rows = {}
for line in open(sys.argv[1]):
    row, srv, rnd, v = line.rstrip("\n").split("\t")
    rows.setdefault(row, {}).setdefault(srv, []).append(float(v))
noisy_at = float(os.environ["NOISY"])
e = os.environ
settings = {
    "rounds": int(e["ROUNDS"]), "seconds_per_run": int(e["DUR"]),
    "access_log": e["ACCESS_LOG"], "server_cpu": int(e["SCPU"]), "client_cpu": int(e["CCPU"]),
    "workers": "one per server (nginx worker_processes 1, hitch workers 1, ours pinned to one CPU)",
    "keep_alive": "120 s, unlimited requests (nginx keepalive_requests 1000000, ours MaxKeepAliveRequests 0)",
    "tls": "TLS 1.3, ECDSA P-256, same certificate",
    "idle_connections": int(e["IDLE"]), "vhosts": int(e["VHOSTS"]),
    "log_rotation_lines": int(e["LOG_LINES"]), "log_stats_lines": int(e["STATS_LINES"]),
    "noisy_threshold": noisy_at,
}
print()
print(f"httpd vs peers — {e['ROUNDS']} interleaved rounds of {e['DUR']} s, servers on CPU {e['SCPU']}, "
      f"clients on CPU {e['CCPU']}, one worker each, access log {e['ACCESS_LOG']} for all, "
      f"keep-alive 120 s unlimited; ratio > 1: httpd better")
print(f"{'row':14} {'unit':8} {'httpd median (min–max)':>30} {'peer':>11} {'peer median (min–max)':>30} {'ratio':>6}  note")
out = []
for row, by in rows.items():
    ours = by["ours"]
    for peer, vals in by.items():
        if peer == "ours":
            continue
        mo, mp = statistics.median(ours), statistics.median(vals)
        spread = lambda v: (max(v) - min(v)) / statistics.median(v) if statistics.median(v) else float("inf")
        ratio = (mp / mo if row in lower else mo / mp) if mo and mp else 0.0
        noisy = spread(ours) > noisy_at or spread(vals) > noisy_at
        num = lambda x: f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
        fmt = lambda v: f"{num(statistics.median(v))} ({num(min(v))}–{num(max(v))})"
        note = " ".join(filter(None, ["FAILED " + ",".join(sorted(failed[row])) if row in failed else "",
                                      "noisy" if noisy else ""]))
        print(f"{row:14} {unit.get(row, 'req/s'):8} {fmt(ours):>30} {peer:>11} {fmt(vals):>30} {f'{ratio:6.2f}' if ratio else '     -'}  {note}")
        out.append({"row": row, "unit": unit.get(row, "req/s"), "better": "lower" if row in lower else "higher",
                    "peer": peer, "ours": ours, "peer_values": vals, "ratio": round(ratio, 4), "noisy": noisy,
                    "failed": sorted(failed.get(row, []))})
print(f"\nerrors during the run: {e['ERRORS']}; elapsed {e['ELAPSED']} s; raw numbers: {sys.argv[2]}")
json.dump({"settings": settings, "elapsed_s": int(e["ELAPSED"]), "errors": int(e["ERRORS"]),
           "load": open("/proc/loadavg").read().split()[:3], "rows": out}, open(sys.argv[2], "w"), indent=1)
PY
[ "$ERRORS" = 0 ]   # exit 1 when a measurement failed
