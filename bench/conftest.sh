#!/usr/bin/env bash
# Config check speed: httpd-conftest vs `apache2 -t` on the same generated config of
# N virtual hosts (default 10,000, about 100,000 lines), side by side, interleaved runs.
#
#   bench/conftest.sh [VHOSTS]      (needs: apt-get install apache2 hyperfine)
#
# Prints each tool's mean time and the ratio (Apache's time / ours: above 1 means we are
# faster). Both parse, resolve and validate every line; Apache also loads its modules.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
N=${1:-10000}
OUT=${OUT:-$BENCH_ROOT/bench/out/conftest}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
bench_need conftest.sh apache2 hyperfine
bench_build httpd-conftest
OURS=$(bench_bin httpd-conftest)
CONF=$(gen_vhosts_conf "$N" "$OUT")
echo "config: $(wc -l < "$CONF") lines, $N virtual hosts"

# Both must accept it.
apache2 -t -f "$CONF" 2>&1 | tail -1
"$OURS" "$CONF" 2>/dev/null

hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$OUT/hyperfine.json" \
    -n httpd-conftest "$OURS $CONF" \
    -n "apache2 -t" "apache2 -t -f $CONF" >/dev/null 2>&1

python3 - "$OUT/hyperfine.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, apache = r["httpd-conftest"], r["apache2 -t"]
print(f"{'tool':16} {'mean s':>8} {'min s':>8} {'max s':>8}")
for name, x in (("httpd-conftest", ours), ("apache2 -t", apache)):
    print(f"{name:16} {x['mean']:8.3f} {x['min']:8.3f} {x['max']:8.3f}")
print(f"ratio (apache / ours): {apache['mean'] / ours['mean']:.1f}x")
PY
