#!/usr/bin/env bash
# Config check speed: httpd-conftest vs `apache2 -t` on the same generated config of
# N virtual hosts (default 10,000, about 100,000 lines), side by side, interleaved runs.
#
#   bench/conftest.sh [VHOSTS]      (needs: apt-get install apache2; env ROUNDS=5 RUNS=4)
#
# Prints each tool's median and mean time and the ratio (Apache's time / ours: above 1
# means we are faster). Both parse, resolve and validate every line; Apache also loads
# its modules.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
N=${1:-10000}
OUT=${OUT:-$BENCH_ROOT/bench/out/conftest}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
bench_need conftest.sh apache2 python3
bench_build httpd-conftest
OURS=$(bench_bin httpd-conftest)
CONF=$(gen_vhosts_conf "$N" "$OUT")
echo "config: $(wc -l < "$CONF") lines, $N virtual hosts"

# Both must accept it.
apache2 -t -f "$CONF" 2>&1 | tail -1
"$OURS" "$CONF" 2>/dev/null

# Rounds, alternating (ours, Apache, ours, Apache, ...), so a change in the machine's load
# during the run weighs on both alike; in each round a tool runs once untimed, then RUNS
# timed times. The untimed run absorbs what the other tool left behind: apache2 -t churns
# through memory, and the next process's first huge-page faults can stall in the kernel's
# compaction (0.2 s of sys time on every other httpd-conftest run right after Apache).
# The ratio is of the medians.
python3 - "${ROUNDS:-5}" "${RUNS:-4}" "$OURS" "$CONF" <<'PY'
import statistics, subprocess, sys, time
rounds, runs, ours, conf = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
tools = {"httpd-conftest": [ours, conf], "apache2 -t": ["apache2", "-t", "-f", conf]}
times = {name: [] for name in tools}
for _ in range(rounds):
    for name, cmd in tools.items():
        for i in range(runs + 1):
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            if i > 0:
                times[name].append(time.perf_counter() - t)
print(f"{'tool':16} {'median s':>9} {'mean s':>8} {'min s':>8} {'max s':>8}")
for name, t in times.items():
    print(f"{name:16} {statistics.median(t):9.3f} {statistics.mean(t):8.3f} {min(t):8.3f} {max(t):8.3f}")
ours_t, apache_t = times["httpd-conftest"], times["apache2 -t"]
print(f"ratio (apache / ours), medians: {statistics.median(apache_t) / statistics.median(ours_t):.1f}x"
      f"  means: {statistics.mean(apache_t) / statistics.mean(ours_t):.1f}x"
      f"  ({rounds} rounds of {runs} runs each)")
PY
