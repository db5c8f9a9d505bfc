#!/usr/bin/env bash
# Config check speed: httpd-conftest vs `apache2 -t` on the same generated config of
# N virtual hosts (default 10,000, about 100,000 lines), side by side, interleaved runs.
#
#   bench/conftest.sh [VHOSTS]      (needs: apt-get install apache2 hyperfine)
#
# Prints each tool's mean time and the ratio (Apache's time / ours: above 1 means we are
# faster). Both parse, resolve and validate every line; Apache also loads its modules.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
OUT=${OUT:-bench/out/conftest}
mkdir -p "$OUT"
command -v apache2 >/dev/null || { echo "needs apache2 (apt-get install apache2)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release -q -p httpd-conftest
OURS=${CARGO_TARGET_DIR:-target}/release/httpd-conftest

CONF="$OUT/vhosts.conf"
ROOT="$OUT/www"
mkdir -p "$ROOT"
MODS=/usr/lib/apache2/modules
{
    echo "ServerRoot $PWD/$OUT"
    echo "PidFile $PWD/$OUT/apache.pid"
    echo "ErrorLog $PWD/$OUT/error.log"
    for m in mpm_event authz_core alias headers mime dir; do
        echo "LoadModule ${m}_module $MODS/mod_${m}.so"
    done
    echo "Listen 127.0.0.1:18999"
    echo "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common"
    for i in $(seq 1 "$N"); do
        cat <<VH
<VirtualHost *:18999>
    ServerName site$i.example.com
    ServerAlias www.site$i.example.com *.site$i.example.org
    DocumentRoot "$PWD/$ROOT"
    CustomLog "$PWD/$OUT/access.log" common
    Alias /static/ "$PWD/$ROOT/"
    Redirect permanent /old https://site$i.example.com/new
    Header always set X-Site "site$i"
    <Directory "$PWD/$ROOT">
        Options FollowSymLinks
        Require all granted
    </Directory>
</VirtualHost>
VH
    done
} > "$CONF"
echo "config: $(wc -l < "$CONF") lines, $N virtual hosts"

# Both must accept it.
apache2 -t -f "$PWD/$CONF" 2>&1 | tail -1
"$OURS" "$CONF" 2>/dev/null

hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$OUT/hyperfine.json" \
    -n httpd-conftest "$OURS $CONF" \
    -n "apache2 -t" "apache2 -t -f $PWD/$CONF" >/dev/null 2>&1

python3 - "$OUT/hyperfine.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, apache = r["httpd-conftest"], r["apache2 -t"]
print(f"{'tool':16} {'mean s':>8} {'min s':>8} {'max s':>8}")
for name, x in (("httpd-conftest", ours), ("apache2 -t", apache)):
    print(f"{name:16} {x['mean']:8.3f} {x['min']:8.3f} {x['max']:8.3f}")
print(f"ratio (apache / ours): {apache['mean'] / ours['mean']:.1f}x")
PY
