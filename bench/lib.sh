# bench/lib.sh — the pieces the bench scripts share; `source "$(dirname "$0")/lib.sh"`.
#
# Sets BENCH_ROOT (the workspace), TARGET (the cargo target dir), SCPU/CCPU (server and
# client CPUs, from SERVER_CPU/CLIENT_CPU, default 0 and 1) and raises the open-file limit.
# Servers started with bench_start are stopped when the script exits.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
ulimit -n "$(ulimit -Hn)"

# bench_need SCRIPT TOOL... — exit 2 naming the first missing tool.
bench_need() {
  local who=$1 t; shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$who: $t is required (see bench/all.sh for the apt packages)" >&2; exit 2; }
  done
}

# bench_build PACKAGE... — release build of our binaries (BENCH_PROFILE=debug: a debug
# build, for trying a drill script quickly; BENCH_BUILD=0: use the binaries already built);
# bench_bin NAME gives the path.
BENCH_PROFILE=${BENCH_PROFILE:-release}
bench_build() {
  [ "${BENCH_BUILD:-1}" = 0 ] && return
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  [ "$BENCH_PROFILE" = release ] && args+=(--release)
  echo "building ${*} ($BENCH_PROFILE)..." >&2
  (cd "$BENCH_ROOT" && cargo build --quiet "${args[@]}")
}
bench_bin() { echo "$TARGET/$BENCH_PROFILE/$1"; }

# bench_docroot DIR [BIG] — a 1 KiB index.html and a 100 KiB file; BIG=1 adds 10m.bin.
bench_docroot() {
  mkdir -p "$1"
  [ -f "$1/index.html" ] || python3 -c "print('<!DOCTYPE html><html><body>' + 'x' * 990 + '</body></html>')" > "$1/index.html"
  [ -f "$1/100k.bin" ] || head -c 102400 /dev/urandom > "$1/100k.bin"
  if [ "${2:-0}" = 1 ] && [ ! -f "$1/10m.bin" ]; then head -c 10485760 /dev/urandom > "$1/10m.bin"; fi
}

# bench_cert DIR — a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1:
# cert.pem, key.pem and combined.pem (hitch's format).
bench_cert() {
  mkdir -p "$1"
  [ -f "$1/cert.pem" ] && return
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
  cat "$1/cert.pem" "$1/key.pem" > "$1/combined.pem"
  chmod 644 "$1/"*.pem
}

# nginx_main NAME DIR — the top of an nginx.conf: one worker, foreground, pid and error log
# in DIR, 19,000 connections; then `http {` opened with the temp paths in DIR/NAME-tmp and
# keep-alive unlimited for 120 s. The caller writes its server blocks and the closing `}`.
nginx_main() {
  local name=$1 d=$2 t="$2/$1-tmp"
  mkdir -p "$t"
  cat <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $d/$name.pid;
error_log $d/$name-error.log warn;
events { worker_connections 19000; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    client_body_temp_path $t/body; proxy_temp_path $t/proxy; fastcgi_temp_path $t/fastcgi;
    uwsgi_temp_path $t/uwsgi; scgi_temp_path $t/scgi;
EOF
}

# Processes started by bench_start; killed (TERM) when the script exits.
BENCH_PIDS=()
bench_stop_all() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  BENCH_PIDS=()
}
trap bench_stop_all EXIT

# bench_start CPU NAME PORT LOGDIR CMD... — start CMD pinned to CPU (output in
# LOGDIR/NAME.out) and wait until PORT listens; its pid is in BENCH_PID.
bench_start() {
  local cpu=$1 name=$2 port=$3 dir=$4; shift 4
  taskset -c "$cpu" "$@" > "$dir/$name.out" 2>&1 &
  BENCH_PID=$!
  BENCH_PIDS+=("$BENCH_PID")
  local _
  for _ in $(seq 200); do
    ss -Hltn "sport = :$port" | grep -q LISTEN && return 0
    kill -0 "$BENCH_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start on :$port; see $dir/$name.out" >&2
  tail -5 "$dir/$name.out" >&2
  exit 1
}

# median — the median of the numbers on stdin, one per line.
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wrk_run ARGS... — wrk with one thread on the client CPU; prints "req/s p99_ms errors"
# (errors: non-2xx/3xx responses plus socket errors; with WRK_NON2XX_OK=1, where the
# answer is meant to be an error status, socket errors only).
wrk_run() {
  taskset -c "$CCPU" wrk -t1 --timeout 5s --latency "$@" 2>&1 | awk -v non2xx_ok="${WRK_NON2XX_OK:-0}" '
    /Requests\/sec/ { rps = $2 }
    /^ *99%/ { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
               ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
    /Non-2xx/ { if (!non2xx_ok) err += $NF }
    /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    END { printf "%s %s %d\n", rps + 0, ms + 0, err }'
}

# idle_rss PORT PID N — open N keep-alive connections that each made one request, and print
# "connections bytes_per_connection marginal silent" (RSS growth of PID and its children;
# silent: N connections that sent nothing yet, measured first).
idle_rss() { python3 "$BENCH_ROOT/bench/idle.py" "$@"; }

# gen_vhosts_conf N DIR — an Apache config of N virtual hosts (about 10 lines each) that
# both apache2 -t and httpd-conftest accept; prints its path.
gen_vhosts_conf() {
  local n=$1 dir=$2 root="$2/www" mods=/usr/lib/apache2/modules m i
  mkdir -p "$root"
  {
    echo "ServerRoot $dir"
    echo "PidFile $dir/apache.pid"
    echo "ErrorLog $dir/error.log"
    for m in mpm_event authz_core alias headers mime dir; do
      echo "LoadModule ${m}_module $mods/mod_${m}.so"
    done
    echo "Listen 127.0.0.1:18999"
    echo "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common"
    for i in $(seq 1 "$n"); do
      cat <<VH
<VirtualHost *:18999>
    ServerName site$i.example.com
    ServerAlias www.site$i.example.com *.site$i.example.org
    DocumentRoot "$root"
    CustomLog "$dir/access.log" common
    Alias /static/ "$root/"
    Redirect permanent /old https://site$i.example.com/new
    Header always set X-Site "site$i"
    <Directory "$root">
        Options FollowSymLinks
        Require all granted
    </Directory>
</VirtualHost>
VH
    done
  } > "$dir/vhosts.conf"
  echo "$dir/vhosts.conf"
}

# gen_log FILE LINES — a deterministic Apache combined log (the shared harness's generator
# when it is there, else a small one here).
gen_log() {
  [ -s "$1" ] && return
  local gen
  for gen in "$BENCH_ROOT/../shared/bench/gen_log.py" /work/shared/bench/gen_log.py; do
    [ -f "$gen" ] && { python3 "$gen" "$1" "$2" >&2; return; }
  done
  python3 - "$1" "$2" <<'PY'
import random, sys, time
out, n = sys.argv[1], int(sys.argv[2]); r = random.Random(1)
paths = ["/", "/index.html", "/about", "/blog/post-%d", "/static/app.js", "/img/%d.png", "/api/items/%d"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "curl/8.4.0", "Googlebot/2.1"]
t = 1700000000
with open(out, "w") as f:
    for i in range(n):
        t += r.random() < 0.3
        p = r.choice(paths)
        p = p % r.randrange(1000) if "%d" in p else p
        ts = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
        f.write(f'10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)} - - [{ts}] "GET {p} HTTP/1.1" '
                f'{r.choice([200, 200, 200, 304, 404])} {r.randrange(50000)} "-" "{r.choice(agents)}"\n')
PY
}
