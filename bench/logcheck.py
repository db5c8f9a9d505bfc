#!/usr/bin/env python3
"""logcheck.py IDS LOGDIR: match a drill client's request ids against the access logs.

IDS is bench/client.py's --ids file ("id status seconds t" lines); LOGDIR holds the log
files (rotated, in any order). Every request answered 200 must have exactly one log line
(its id is in the request line's query string, `?id=KIND-N`). Prints one line: answered
requests, log lines and files, lost, duplicated and unknown ids; exits 1 when a line was
lost or duplicated."""
import collections, os, re, sys

ids_file, logdir = sys.argv[1], sys.argv[2]
ok = {l.split()[0] for l in open(ids_file) if l.split()[1] == "200"}
sent = {l.split()[0] for l in open(ids_file)}
seen, lines = collections.Counter(), 0
files = sorted(os.listdir(logdir))
for name in files:
    for line in open(os.path.join(logdir, name), errors="replace"):
        lines += 1
        m = re.search(r"[?&]id=([a-z0-9]+-\d+)", line)
        if m:
            seen[m.group(1)] += 1
lost = sorted(r for r in ok if not seen[r])
dup = sorted(r for r, n in seen.items() if n > 1)
unknown = [r for r in seen if r not in sent]
print(f"log: {len(ok)} answered requests, {lines} lines in {len(files)} files; lost {len(lost)}, "
      f"duplicated {len(dup)}, unknown ids {len(unknown)}"
      f"{'; lost e.g. ' + ' '.join(lost[:3]) if lost else ''}{'; duplicated e.g. ' + ' '.join(dup[:3]) if dup else ''}")
sys.exit(1 if lost or dup else 0)
