#!/usr/bin/env bash
# bench/faults.sh — things going wrong under load, with a well-behaved client measured
# throughout (bench/client.py: its ok/failed counts and slowest request every second).
#
#   bench/faults.sh [FAULT...]      default: all of them, in this order
#
#   backend    the proxy's backend is killed (SIGKILL) under load and restarted 4 s later:
#              static requests must not fail; proxied ones get a quick 502/503 while it is
#              down (not a hang) and recover once it is back
#   rotator    the piped httpd-logrotate is killed (SIGKILL) under load: core restarts it;
#              requests must not fail; log lines lost are counted (ids matched to the logs)
#   diskfull   the rotator's disk fills up (a 1 MiB tmpfs; needs root to mount it): requests
#              must not fail or stall; the rotator reports the full disk
#   cert       httpd-tls's certificate is replaced and SIGHUP sent while 20 TLS connections
#              are open: they keep working; new connections get the new certificate
#   slowloris, slowbody, slowread
#              slowhttptest (apt) with 1,000 slow connections for 20 s against httpd-core
#   idle       9,000 idle keep-alive connections held for 15 s
#
# Each fault prints what it tried and what was lost. Exit status 1 if a well-behaved
# request failed where it must not. Needs: slowhttptest, h2load, python3, openssl, curl.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
FAULTS=${*:-backend rotator diskfull cert slowloris slowbody slowread idle}
bench_need faults.sh slowhttptest python3 openssl curl taskset ss
OUT=${OUT:-/tmp/httpd-faults}
rm -rf "$OUT"; mkdir -p "$OUT/run" "$OUT/logs"
bench_build httpd-core httpd-tls httpd-logrotate
CORE=$(bench_bin httpd-core) TLSD=$(bench_bin httpd-tls) ROTATE=$(bench_bin httpd-logrotate)
bench_docroot "$OUT/www"
P_CORE=18901 P_BACK=18902 P_TLS=18903
BAD=0

# core_conf [LINES...] — httpd-core's config: static + /proxy/ to the backend, plus LINES.
core_conf() {
  { echo "Listen 127.0.0.1:$P_CORE"; echo "DocumentRoot \"$OUT/www\""
    echo "ProxyPass /proxy/ http://127.0.0.1:$P_BACK/"; printf '%s\n' "$@"; } > "$OUT/run/core.conf"
}
start_core() { bench_start "$SCPU" core $P_CORE "$OUT/run" "$CORE" -f "$OUT/run/core.conf"; CORE_PID=$BENCH_PID; }
start_backend() {
  printf 'Listen 127.0.0.1:%s\nDocumentRoot "%s"\n' $P_BACK "$OUT/www" > "$OUT/run/backend.conf"
  bench_start "$CCPU" backend $P_BACK "$OUT/run" "$CORE" -f "$OUT/run/backend.conf"; BACK_PID=$BENCH_PID
}
# client SECS NAME ARGS... — bench/client.py in the background, one report a second.
client() {
  local secs=$1 name=$2; shift 2
  : > "$OUT/$name.ids"
  taskset -c "$CCPU" python3 "$HERE/client.py" --seconds "$secs" --interval 1 --label "$name" \
    --ids "$OUT/$name.ids" "$@" > "$OUT/$name.client" &
  CLIENT=$!
}
# client_wait NAME KIND... — wait for the client; print its timeline and summary; counts
# failures of the KINDs that must not fail.
client_wait() {
  local name=$1; shift
  wait "$CLIENT" || true
  sed 's/^/    /' "$OUT/$name.client" | grep -v '^    {' | awk 'NR % 2 == 1'
  python3 - "$OUT/$name.client" "$@" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
bad = 0
for kind, c in sorted(s["stats"].items()):
    must = kind in sys.argv[2:]
    print(f"  {kind:7} sent {c['sent']:6}  ok {c['ok']:6}  failed {c['failed']:4}  reconnected {c['reconnected']}"
          f"{'  (must be 0 failed)' if must else ''}")
    if must: bad += c["failed"]
for r, n in s["failures"].items(): print(f"    failure: {r} x{n}")
sys.exit(1 if bad else 0)
PY
}
verdict() { # NAME STATUS
  if [ "$2" = 0 ]; then echo "  => $1: lost nothing"; else echo "  => $1: LOST REQUESTS (see above)"; BAD=1; fi
}
# log_check NAME [DIR] — stop core (TERM: drain, close the log pipe), match the client's
# ids against the rotated logs in DIR (default $OUT/logs); prints lost and duplicated lines.
log_check() {
  kill -TERM "$CORE_PID"; for _ in $(seq 200); do kill -0 "$CORE_PID" 2>/dev/null || break; sleep 0.1; done
  sleep 1
  python3 "$HERE/logcheck.py" "$OUT/$1.ids" "${2:-$OUT/logs}" | sed 's/^/  /'
}
rotator_pid() { # the httpd-logrotate process under core (its child, or the child of core's sh -c)
  local p c
  for p in $(cat /proc/"$CORE_PID"/task/*/children 2>/dev/null); do
    for c in "$p" $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      tr '\0' '\n' < /proc/"$c"/cmdline 2>/dev/null | head -1 | grep -q 'httpd-logrotate$' && { echo "$c"; return 0; }
    done
  done
  return 0
}

fault_backend() {
  echo "== backend: killed under load at t=3 s, restarted at t=7 s (12 s of static + proxy traffic)"
  start_backend; core_conf; start_core
  client 12 backend --static "http://127.0.0.1:$P_CORE/index.html" --proxy "http://127.0.0.1:$P_CORE/proxy/index.html"
  sleep 3; kill -KILL "$BACK_PID"; echo "  t=3 backend killed"
  sleep 4; start_backend; echo "  t=7 backend restarted"
  local st=0; client_wait backend static || st=$?
  python3 - "$OUT/backend.ids" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("proxy-")]
down = [r for r in rows if r[1] != "200"]
after = [r for r in rows if float(r[3]) > 8.0]
slow = max((float(r[2]) for r in down), default=0)
print(f"  proxy: {len(down)} answered with an error while the backend was down (slowest {slow * 1000:.0f} ms); "
      f"after t=8 s: {sum(r[1] == '200' for r in after)} ok, {sum(r[1] != '200' for r in after)} failed")
sys.exit(1 if any(r[1] != "200" for r in after) else 0)
PY
  st=$((st + $?)); bench_stop_all; verdict backend $st
}

fault_rotator() {
  echo "== rotator: the piped httpd-logrotate killed (SIGKILL) under load at t=3 s and t=6 s"
  rm -rf "$OUT/logs"; mkdir -p "$OUT/logs"
  start_backend
  core_conf "CustomLog \"|$ROTATE $OUT/logs/access.%Y%m%d-%H%M%S.log\" combined"; start_core
  client 10 rotator --static "http://127.0.0.1:$P_CORE/index.html" --proxy "http://127.0.0.1:$P_CORE/proxy/index.html"
  local r
  sleep 3; r=$(rotator_pid); echo "  t=3 killing rotator ${r:-MISSING}"; [ -z "$r" ] || kill -KILL "$r"
  sleep 3; r=$(rotator_pid); echo "  t=6 killing rotator ${r:-MISSING} (restarted by core?)"; [ -z "$r" ] || kill -KILL "$r"
  local st=0; client_wait rotator static proxy || st=$?
  sleep 1; echo "  rotator after the client stopped: $(rotator_pid || true)"
  log_check rotator || st=$((st + 1)); bench_stop_all; verdict rotator $st
}

fault_diskfull() {
  echo "== diskfull: the rotator writes to a 200 KiB tmpfs that fills up during 8 s of traffic; then it grows to 64 MiB"
  local mnt=$OUT/small
  mkdir -p "$mnt"
  if ! mount -t tmpfs -o size=200k tmpfs "$mnt" 2>/dev/null; then echo "  skipped: cannot mount a tmpfs (needs root)"; return; fi
  start_backend
  core_conf "CustomLog \"|$ROTATE $mnt/access.%Y%m%d-%H%M%S.log\" combined"; start_core
  client 8 diskfull --static "http://127.0.0.1:$P_CORE/index.html"
  local st=0; client_wait diskfull static || st=$?
  echo "  disk full: $(df -h "$mnt" | awk 'NR == 2 { print $3 " used of " $2 }'); log lines on it: $(cat "$mnt"/* | wc -l)"
  echo "  core/rotator said: $(grep -i 'space\|full\|ENOSPC' "$OUT/run/core.out" | head -2 | tr '\n' ' ')"
  mount -o remount,size=64m "$mnt"; sleep 3
  echo "  after the disk grew: core answers $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_CORE/index.html")"
  log_check diskfull "$mnt" || st=$((st + 1))
  bench_stop_all; umount "$mnt"; verdict diskfull $st
}

fault_cert() {
  echo "== cert: certificate replaced + SIGHUP to httpd-tls with 20 TLS connections open (8 s of TLS traffic)"
  rm -rf "$OUT/tls" "$OUT/tls2"; bench_cert "$OUT/tls"; bench_cert "$OUT/tls2"
  mkdir -p "$OUT/live"; cp "$OUT/tls/cert.pem" "$OUT/tls/key.pem" "$OUT/live/"
  start_backend; core_conf; start_core
  bench_start "$SCPU" tls $P_TLS "$OUT/run" "$TLSD" --listen 127.0.0.1:$P_TLS --backend 127.0.0.1:$P_CORE \
    --cert "$OUT/live/cert.pem" --key "$OUT/live/key.pem" --proxy-protocol off; local tls_pid=$BENCH_PID
  client 8 cert --tls "https://127.0.0.1:$P_TLS/index.html"
  local st=0
  python3 - "$P_TLS" "$tls_pid" "$OUT" <<'PY' || st=$?
import hashlib, http.client, os, shutil, signal, ssl, sys, time
port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl._create_unverified_context()
def fp(conn): return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()[:16]
def get(c):
    c.request("GET", "/index.html"); r = c.getresponse(); r.read(); return r.status
conns = [http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10) for _ in range(20)]
old = [get(c) for c in conns]
old_fp = fp(conns[0])
time.sleep(1)
for f in ("cert.pem", "key.pem"):
    shutil.copy(f"{out}/tls2/{f}", f"{out}/live/{f}.new"); os.replace(f"{out}/live/{f}.new", f"{out}/live/{f}")
os.kill(pid, signal.SIGHUP)
time.sleep(1)
again = []
for c in conns:
    try: again.append(get(c))
    except Exception as e: again.append(type(e).__name__)
fresh = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
new_status = get(fresh)
new_fp = fp(fresh)
want = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(f"{out}/tls2/cert.pem").read())).hexdigest()[:16]
kept = sum(s == 200 for s in again)
print(f"  open connections: {kept} of 20 still served after the swap (statuses {sorted(set(map(str, again)))})")
print(f"  certificate: before {old_fp}, new connection {new_fp} (status {new_status}); the new file is {want}")
sys.exit(0 if kept == 20 and new_fp == want and new_fp != old_fp else 1)
PY
  client_wait cert tls || st=$((st + 1))
  echo "  httpd-tls said: $(grep -i reload "$OUT/run/tls.out" | tail -1)"
  bench_stop_all; verdict cert $st
}

# slow KIND ARGS... — slowhttptest against core for 20 s while the client measures.
slow() {
  local kind=$1; shift
  echo "== $kind: slowhttptest $* (1,000 connections, 20 s) against httpd-core with its default timeouts"
  start_backend; core_conf; start_core
  client 24 "$kind" --static "http://127.0.0.1:$P_CORE/index.html"
  (cd "$OUT/run" && taskset -c "$CCPU" slowhttptest -c 1000 -r 200 -l 20 -p 3 "$@" -o "$OUT/run/$kind" -g \
     > "$OUT/run/$kind.out" 2>&1) || true
  local st=0; client_wait "$kind" static || st=$?
  local csv="$OUT/run/$kind.csv"
  if [ -f "$csv" ]; then
    python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peak = lambda k: max(int(r[k]) for r in rows) if rows else 0
# "Service Available" is slowhttptest's probe: non-zero while its probe request is answered.
down = sum(1 for r in rows[1:] if int(r["Service Available"]) == 0)
print(f"  slowhttptest: {len(rows)} s, peak {peak('Connected')} slow connections open at once, "
      f"{peak('Closed')} closed by the server; its own probe found the service down in {down} of {len(rows) - 1} s")
PY
  fi
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/run/$kind.out" | grep -E "Exit status|service available" | tail -2 | sed 's/^/  slowhttptest: /' || true
  echo "  core RSS at the end: $(awk '/^VmRSS/ { print $2 }' /proc/"$CORE_PID"/status) KiB"
  bench_stop_all; verdict "$kind" $st
}

fault_idle() {
  echo "== idle: 9,000 idle keep-alive connections held for 15 s while a client is served"
  start_backend; core_conf "KeepAliveTimeout 60"; start_core
  client 20 idle --static "http://127.0.0.1:$P_CORE/index.html" --proxy "http://127.0.0.1:$P_CORE/proxy/index.html"
  taskset -c "$CCPU" python3 - "$P_CORE" "$CORE_PID" <<'PY'
import resource, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
rss = lambda: int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])
before, socks, failed = rss(), [], 0
for _ in range(9000):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"); s.recv(4096); socks.append(s)
    except OSError: failed += 1
print(f"  {len(socks)} idle connections open ({failed} refused); core RSS {before} -> {rss()} KiB")
time.sleep(15)
alive = 0
for s in socks:
    try: s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"); alive += s.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError: pass
print(f"  after 15 s: {alive} of {len(socks)} still answer on their connection")
PY
  local st=0; client_wait idle static proxy || st=$?
  bench_stop_all; verdict idle $st
}

for f in $FAULTS; do
  case $f in
    backend|rotator|diskfull|cert|idle) "fault_$f" ;;
    slowloris) slow slowloris -H -i 10 -x 24 -u "http://127.0.0.1:$P_CORE/index.html" ;;
    slowbody) slow slowbody -B -i 10 -s 8192 -x 10 -t POST -u "http://127.0.0.1:$P_CORE/proxy/index.html" ;;
    slowread) slow slowread -X -w 512 -y 1024 -n 5 -z 32 -k 3 -u "http://127.0.0.1:$P_CORE/100k.bin" ;;
    *) echo "faults.sh: unknown fault $f" >&2; exit 2 ;;
  esac
done
exit $BAD
