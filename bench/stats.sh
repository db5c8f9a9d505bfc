#!/usr/bin/env bash
# Usage: bench/stats.sh
#   env: SIZES="1000000 10000000"  lines per generated combined log
#        ROUNDS=3                  rounds for logs up to 2M lines; ROUNDS_BIG=1 above that
#        LOGDIR=/tmp/bench/logs  OUT=/tmp/bench/out/stats
#        CARGO_TARGET_DIR          where the release build of httpd-logrotate goes
#
# GoAccess against `httpd-logrotate --stats` on the same Apache combined logs, in the same
# run, interleaved (the order alternates each round), so the machine's noise hits both.
# For each tool: median wall time, lines/s, median peak RSS (/usr/bin/time), and the ratio
# to GoAccess. Ours runs twice: on all cores (the default) and with --threads 1, to show
# what is parallelism and what is the parser. Then the panels both tools have are
# compared count by count: requests, bytes, unique visitors, status codes, clients.
# Duration is GoAccess's: on a busy 2-core machine about 40-80 s per million lines, so the
# 10M case (one round by default) takes 10-20 minutes; SIZES=1000000 for a quick run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"1000000 10000000"}
ROUNDS=${ROUNDS:-3}
ROUNDS_BIG=${ROUNDS_BIG:-1}
LOGDIR=${LOGDIR:-/tmp/bench/logs}
OUT=${OUT:-/tmp/bench/out/stats}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

command -v goaccess >/dev/null || { echo "goaccess is not installed (apt-get install goaccess)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }
mkdir -p "$LOGDIR" "$OUT"
bench_build httpd-logrotate
OURS=$(bench_bin httpd-logrotate)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); goaccess $(goaccess --version | head -1 | awk '{print $3}')"

# name|command (LOG and JSON are substituted per run)
TOOLS=(
  "goaccess|goaccess LOG --log-format=COMBINED -o JSON"
  "ours|$OURS --stats --exact --json LOG > JSON"
  "ours-1-thread|$OURS --stats --exact --threads 1 --json LOG > JSON"
)

for size in $SIZES; do
  log="$LOGDIR/access-$size.log"
  if [ ! -f "$log" ]; then
    echo "generating $log"
    gen_log "$log" "$size"
  fi
  lines=$(wc -l < "$log")
  rounds=$ROUNDS; [ "$size" -gt 2000000 ] && rounds=$ROUNDS_BIG
  echo
  echo "## $log: $lines lines, $(( $(stat -c %s "$log") / 1048576 )) MiB, $rounds round(s)"
  cat "$log" > /dev/null   # into the page cache, for both
  times="$OUT/times-$size.txt"; : > "$times"
  for ((r = 1; r <= rounds; r++)); do
    order=("${TOOLS[@]}")
    if ((r % 2 == 0)); then
      order=(); for ((i = ${#TOOLS[@]} - 1; i >= 0; i--)); do order+=("${TOOLS[$i]}"); done
    fi
    for t in "${order[@]}"; do
      name=${t%%|*}; cmd=${t#*|}
      json="$OUT/$name-$size.json"
      cmd=${cmd//LOG/$log}; cmd=${cmd//JSON/$json}
      /usr/bin/time -f "%e %M" -o "$OUT/time.txt" bash -c "$cmd" 2> "$OUT/$name.stderr" > /dev/null
      echo "$name $(cat "$OUT/time.txt")" >> "$times"
      echo "  round $r: $name $(awk '{printf "%.2f s, %.0f MiB", $1, $2 / 1024}' "$OUT/time.txt")"
    done
  done
  python3 - "$times" "$lines" "$OUT" "$size" <<'EOF'
import json, statistics, sys
times, lines, out, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {}
for row in open(times):
    name, secs, rss = row.split()
    runs.setdefault(name, []).append((float(secs), int(rss)))
base = statistics.median(s for s, _ in runs["goaccess"])
base_rss = statistics.median(r for _, r in runs["goaccess"])
print()
print("| tool | median s | min–max s | lines/s | peak RSS MiB | speed vs goaccess | RSS vs goaccess |")
print("|---|---|---|---|---|---|---|")
for name, rs in runs.items():
    secs = statistics.median(s for s, _ in rs)
    rss = statistics.median(r for _, r in rs)
    lo, hi = min(s for s, _ in rs), max(s for s, _ in rs)
    print(f"| {name} | {secs:.2f} | {lo:.2f}–{hi:.2f} | {lines / max(secs, 1e-3):,.0f} | {rss / 1024:.0f} "
          f"| {base / max(secs, 1e-3):.1f}× | {rss / base_rss:.2f}× |")

g = json.load(open(f"{out}/goaccess-{size}.json"))
o = json.load(open(f"{out}/ours-{size}.json"))
gen = g["general"]
checks = [
    ("requests (valid)", gen["valid_requests"], o["requests"]),
    ("invalid", gen["failed_requests"], o["invalid"]),
    ("bytes", gen["bandwidth"], o["bytes"]),
    ("unique visitors", gen["unique_visitors"], o["unique_visitors"]),
]
# GoAccess's JSON lists at most 366 hosts: compare the top ten.
for i, (h, c) in enumerate(zip(g["hosts"]["data"][:10], o["top_clients"][:10])):
    checks.append((f"top client #{i + 1} hits ({h['data']} / {c['client']})", h["hits"]["count"], c["hits"]))
codes = {}
for cls in g["status_codes"]["data"]:
    for item in cls["items"]:
        codes[item["data"][:3]] = item["hits"]["count"]
for code in sorted(set(codes) | set(o["status"])):
    checks.append((f"status {code}", codes.get(code), o["status"].get(code)))
print()
print("| panel | goaccess | ours | same |")
print("|---|---|---|---|")
for name, a, b in checks:
    print(f"| {name} | {a} | {b} | {'yes' if a == b else 'NO'} |")
EOF
done
