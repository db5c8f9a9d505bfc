#!/usr/bin/env bash
# bench/soak.sh — mixed traffic for N minutes while httpd-core reloads and its logs rotate.
#
#   bench/soak.sh [--minutes N]       (default 10; needs h2load, python3, openssl, curl)
#
# One httpd-core (pinned to CPU $SERVER_CPU) serves static files, h2c and a reverse proxy
# (to a second httpd-core, the backend), and httpd-tls terminates TLS in front of it. Its
# access log goes through a pipe to httpd-logrotate, which starts a new file every 30 s
# (--every 30). bench/client.py (on CPU $CLIENT_CPU) sends static, proxy, TLS and HTTP/2
# requests, each with a unique id in its query string, while this script sends SIGHUP (a
# graceful reload) to httpd-core every 10 s. At the end core is stopped (TERM: it drains
# and closes the log pipe, the rotator drains and exits), the rotated files are merged and
# every id the client sent is looked up: printed are the failed requests, the log lines
# lost (a 200 without its line) and duplicated, the files written, and the RSS of core
# (with its rotator) and httpd-tls at the start and end. All of these must be 0 / flat.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
MINUTES=10
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bench_need soak.sh h2load python3 openssl curl taskset ss
OUT=${OUT:-/tmp/httpd-soak}
rm -rf "$OUT"; mkdir -p "$OUT/logs" "$OUT/run"
bench_build httpd-core httpd-tls httpd-logrotate
CORE=$(bench_bin httpd-core) TLSD=$(bench_bin httpd-tls) ROTATE=$(bench_bin httpd-logrotate)
bench_docroot "$OUT/www"
bench_cert "$OUT/tls"
P_CORE=18801 P_BACK=18802 P_TLS=18803

cat > "$OUT/run/backend.conf" <<EOF
Listen 127.0.0.1:$P_BACK
DocumentRoot "$OUT/www"
EOF
cat > "$OUT/run/core.conf" <<EOF
Listen 127.0.0.1:$P_CORE
DocumentRoot "$OUT/www"
Protocols h2c http/1.1
ProxyPass /proxy/ http://127.0.0.1:$P_BACK/
CustomLog "|$ROTATE $OUT/logs/access.%Y%m%d-%H%M%S.log --every 30" combined
EOF
bench_start "$CCPU" backend $P_BACK "$OUT/run" "$CORE" -f "$OUT/run/backend.conf"
bench_start "$SCPU" core $P_CORE "$OUT/run" "$CORE" -f "$OUT/run/core.conf"; CORE_PID=$BENCH_PID
bench_start "$SCPU" tls $P_TLS "$OUT/run" "$TLSD" --listen 127.0.0.1:$P_TLS --backend 127.0.0.1:$P_CORE \
  --cert "$OUT/tls/cert.pem" --key "$OUT/tls/key.pem" --proxy-protocol off; TLS_PID=$BENCH_PID
curl -sfk -o /dev/null "https://127.0.0.1:$P_TLS/proxy/index.html" || { echo "soak.sh: no answer through TLS" >&2; exit 1; }

# rss PID — KiB of PID and its children (core's piped rotator is its child).
rss() {
  local total=0 p
  for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    total=$((total + $(awk '/^VmRSS/ { print $2 }' /proc/"$p"/status 2>/dev/null || echo 0)))
  done
  echo "$total"
}
SECS=$((MINUTES * 60))
echo "soak: $MINUTES min of static, proxy, TLS and h2c traffic; SIGHUP to httpd-core every 10 s; rotation every 30 s"
echo "start: core+rotator RSS $(rss $CORE_PID) KiB, httpd-tls RSS $(rss $TLS_PID) KiB"
RSS_START="$(rss $CORE_PID) $(rss $TLS_PID)"
: > "$OUT/ids.txt"
taskset -c "$CCPU" python3 "$HERE/client.py" --seconds "$SECS" --label soak --ids "$OUT/ids.txt" --interval 30 \
  --static "http://127.0.0.1:$P_CORE/index.html" --proxy "http://127.0.0.1:$P_CORE/proxy/index.html" \
  --tls "https://127.0.0.1:$P_TLS/index.html" --h2 "http://127.0.0.1:$P_CORE/100k.bin" \
  > "$OUT/client.out" &
CLIENT=$!
HUPS=0 PEAK=0 BAD=0
while kill -0 "$CLIENT" 2>/dev/null; do
  for _ in $(seq 20); do kill -0 "$CLIENT" 2>/dev/null && sleep 0.5; done
  kill -0 "$CLIENT" 2>/dev/null || break
  kill -HUP "$CORE_PID"; HUPS=$((HUPS + 1))
  r=$(rss $CORE_PID); [ "$r" -gt "$PEAK" ] && PEAK=$r
  [ $((HUPS % 3)) = 0 ] && tail -n 4 "$OUT/client.out" | grep '^\[' | tail -1 || true
done
wait "$CLIENT" || true
RSS_END="$(rss $CORE_PID) $(rss $TLS_PID)"
kill -TERM "$CORE_PID"
for _ in $(seq 200); do kill -0 "$CORE_PID" 2>/dev/null || break; sleep 0.1; done
sleep 1   # the rotator drains after core's EOF
echo "reloads: $HUPS; log files: $(ls "$OUT/logs" | wc -l); core errors logged: $(grep -ci 'error' "$OUT/run/core.out" || true)"
echo "end: core+rotator RSS $(echo "$RSS_END" | cut -d' ' -f1) KiB (peak $PEAK), httpd-tls RSS $(echo "$RSS_END" | cut -d' ' -f2) KiB"

python3 - "$OUT/ids.txt" "$OUT/client.out" <<'PY' || BAD=1
import json, sys
status = [line.split()[1] for line in open(sys.argv[1])]
summary = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(f"requests sent {len(status)}: 200 {status.count('200')}, failed {summary['failed']}, "
      f"reconnected after the server closed an idle connection {status.count('reconnect')}")
for kind, s in sorted(summary["stats"].items()):
    print(f"  {kind:7} sent {s['sent']:7}  ok {s['ok']:7}  failed {s['failed']}  reconnected {s['reconnected']}")
for reason, n in summary["failures"].items():
    print(f"  failure: {reason} x{n}")
sys.exit(1 if summary["failed"] else 0)
PY
python3 "$HERE/logcheck.py" "$OUT/ids.txt" "$OUT/logs" || BAD=1
set -- $RSS_START $RSS_END
echo "RSS core+rotator $1 -> $3 KiB, httpd-tls $2 -> $4 KiB"
if [ "$BAD" = 0 ]; then echo "SOAK PASSED: nothing lost"; else echo "SOAK FAILED: requests or log lines lost"; exit 1; fi
