#!/usr/bin/env bash
# bench/logrotate.sh: httpd-logrotate vs Apache's rotatelogs on the same input, same run.
#
# The same generated combined log (LINES lines, default 3 million, from
# ../shared/bench/gen_log.py or a local copy) is piped by `cat` (pinned to CLIENT_CPU) into
# each rotator (pinned to CPU), in interleaved rounds, writing to OUTDIR (default a tmpfs,
# /dev/shm, so the disk's noise stays out; set OUTDIR to a disk path to include it).
# Each rotator rotates on size (100M) the same way. Printed per tool: median wall time,
# lines/s, CPU seconds (user+sys, from /usr/bin/time) and peak RSS, and the ratio to
# rotatelogs. Every run's output is checked: all lines written, none lost. A `cat` row
# (the same pipe into one file, no rotation) shows the ceiling the machine allows.
#
#   bench/logrotate.sh                     # LINES=3000000 ROUNDS=3
#   LINES=5000000 ROUNDS=5 bench/logrotate.sh
#
# Needs: rotatelogs (apt-get install apache2-utils), python3, /usr/bin/time (apt-get install
# time), taskset. Builds httpd-logrotate in release mode unless OURS names a binary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
LINES="${LINES:-3000000}"
ROUNDS="${ROUNDS:-3}"
CPU="${CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
WORK="${WORK:-/tmp/bench/logrotate}"
OUTDIR="${OUTDIR:-/dev/shm/httpd-logrotate-bench}"
ROTATELOGS="${ROTATELOGS:-$(command -v rotatelogs || echo /usr/bin/rotatelogs)}"

for tool in "$ROTATELOGS" /usr/bin/time python3 taskset; do
    command -v "$tool" >/dev/null || { echo "logrotate.sh: missing $tool (apt-get install apache2-utils time python3 util-linux)" >&2; exit 2; }
done

if [[ -z "${OURS:-}" ]]; then
    bench_build httpd-logrotate
    OURS=$(bench_bin httpd-logrotate)
fi

mkdir -p "$WORK"
input="$WORK/access-$LINES.log"
[[ -s "$input" ]] || echo "generating $LINES lines into $input" >&2
gen_log "$input" "$LINES"
bytes=$(stat -c %s "$input")

# name | command (PATTERN dir is $dir)
run_one() { # name dir -> "wall user sys rss_kb"
    local name="$1" dir="$2" t="$WORK/time.$1"
    rm -rf "$dir"; mkdir -p "$dir"
    case "$name" in
        rotatelogs)   cmd=("$ROTATELOGS" "$dir/access.%Y%m%d.log" 100M) ;;
        ours)         cmd=("$OURS" "$dir/access.%Y%m%d.log" --max-size 100M --fsync never) ;;
        ours-fsync1s) cmd=("$OURS" "$dir/access.%Y%m%d.log" --max-size 100M) ;;
        # The floor: the same bytes through the same pipe into one file on the same device.
        cat)          cmd=(sh -c 'exec cat > "$1"' sh "$dir/access.log") ;;
    esac
    taskset -c "$CLIENT_CPU" cat "$input" \
        | /usr/bin/time -o "$t" -f "%e %U %S %M" taskset -c "$CPU" "${cmd[@]}"
    local got
    got=$(cat "$dir"/* | wc -l)
    if [[ "$got" != "$LINES" ]]; then
        echo "logrotate.sh: $name wrote $got lines, expected $LINES" >&2
        exit 1
    fi
    tail -1 "$t"
}

tools=(rotatelogs ours ours-fsync1s cat)
results="$WORK/results.txt"
: > "$results"
echo "input: $LINES lines, $((bytes / 1048576)) MiB; output: $OUTDIR; rounds: $ROUNDS (interleaved)" >&2
for round in $(seq 1 "$ROUNDS"); do
    for name in "${tools[@]}"; do
        r=$(run_one "$name" "$OUTDIR/$name")
        echo "$name $r" >> "$results"
        echo "round $round $name: $r" >&2
    done
done
rm -rf "$OUTDIR"

python3 - "$results" "$LINES" <<'EOF'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, rss = line.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rss)))
lines = int(sys.argv[2])
med = {n: (statistics.median(w for w, _, _ in r), statistics.median(c for _, c, _ in r),
           max(m for _, _, m in r)) for n, r in rows.items()}
base = med["rotatelogs"]
print("| tool | median wall s | lines/s | CPU s (user+sys) | peak RSS KiB | lines/s vs rotatelogs | CPU vs rotatelogs |")
print("|---|---|---|---|---|---|---|")
for n, (w, c, m) in med.items():
    print(f"| {n} | {w:.2f} | {lines / w:,.0f} | {c:.2f} | {m} | {base[0] / w:.2f}x | {c / base[1] if base[1] else float('nan'):.2f}x |")
EOF
