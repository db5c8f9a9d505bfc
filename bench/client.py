#!/usr/bin/env python3
"""client.py: a well-behaved client for the drills (bench/soak.sh, bench/faults.sh).

    client.py --seconds S [--static URL] [--proxy URL] [--tls URL] [--h2 URL]
              [--ids FILE] [--interval SECS] [--label NAME]

One thread per URL given, each sending GET requests in a loop on a keep-alive connection
(TLS without certificate checks for --tls; --h2 runs `h2load -c1 -m10` batches of 200
requests over HTTP/2 cleartext). Every request carries a unique id in its query string
(`?id=KIND-N`), written with its outcome to --ids (one "id status seconds t" line each, t the time since
the start) so the
caller can match them against the server's access log.

A request that fails because the server closed an idle kept-alive connection before
reading it (the connection was reused after a reload or a timeout) is retried once on a
new connection, with a new id, as browsers do; it is counted as "reconnected", not failed.
Any other error or a status other than 200 is a failure. Prints one line per --interval
(ok, failed, slowest request) and a JSON summary on the last line."""
import argparse, http.client, json, os, ssl, subprocess, sys, tempfile, threading, time
from urllib.parse import urlsplit

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, required=True)
for kind in ("static", "proxy", "tls", "h2"):
    ap.add_argument(f"--{kind}")
ap.add_argument("--ids")
ap.add_argument("--interval", type=float, default=10)
ap.add_argument("--label", default="client")
args = ap.parse_args()

lock = threading.Lock()
stats = {}  # kind -> counters
window = {}  # kind -> [ok, failed, slowest]
reasons = {}
ids = open(args.ids, "a", buffering=1) if args.ids else None
deadline = time.monotonic() + args.seconds
t0 = time.monotonic()


def record(kind, rid, status, secs, reason=None):
    with lock:
        s = stats.setdefault(kind, {"sent": 0, "ok": 0, "failed": 0, "reconnected": 0})
        w = window.setdefault(kind, [0, 0, 0.0])
        s["sent"] += 1
        if status == 200:
            s["ok"] += 1
            w[0] += 1
        else:
            s["failed"] += 1
            w[1] += 1
            key = f"{kind}: {reason or status}"
            reasons[key] = reasons.get(key, 0) + 1
        w[2] = max(w[2], secs)
        if ids:
            ids.write(f"{rid} {status} {secs:.4f} {time.monotonic() - t0:.2f}\n")


def http_worker(kind, url):
    u = urlsplit(url)
    ctx = ssl._create_unverified_context() if u.scheme == "https" else None
    make = lambda: (http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=ctx)
                    if ctx else http.client.HTTPConnection(u.hostname, u.port, timeout=10))
    conn, n, fresh = make(), 0, True
    while time.monotonic() < deadline:
        n += 1
        rid = f"{kind}-{n}"
        start = time.monotonic()
        try:
            conn.request("GET", f"{u.path}?id={rid}")
            resp = conn.getresponse()
            resp.read()
            record(kind, rid, resp.status, time.monotonic() - start)
            fresh = False
            if resp.will_close:
                conn.close()
                conn, fresh = make(), True
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
            conn.close()
            if not fresh:
                # The server closed a reused idle connection: retry on a new one.
                with lock:
                    stats.setdefault(kind, {"sent": 0, "ok": 0, "failed": 0, "reconnected": 0})["reconnected"] += 1
                    if ids:
                        ids.write(f"{rid} reconnect 0 {time.monotonic() - t0:.2f}\n")
                conn, fresh = make(), True
                continue
            record(kind, rid, 0, time.monotonic() - start, type(e).__name__)
            conn, fresh = make(), True
            time.sleep(0.05)
        except (OSError, http.client.HTTPException) as e:
            record(kind, rid, 0, time.monotonic() - start, type(e).__name__)
            conn.close()
            conn, fresh = make(), True
            time.sleep(0.05)


def h2_worker(kind, url):
    u = urlsplit(url)
    batch, n = 200, 0
    with tempfile.TemporaryDirectory() as d:
        while time.monotonic() < deadline:
            uris = [f"{u.scheme}://{u.netloc}{u.path}?id={kind}-{n + i + 1}" for i in range(batch)]
            n += batch
            path = os.path.join(d, "uris")
            open(path, "w").write("\n".join(uris) + "\n")
            start = time.monotonic()
            out = subprocess.run(["h2load", "-c1", "-m10", "-n", str(batch), "-i", path],
                                 capture_output=True, text=True, timeout=60).stdout
            secs = time.monotonic() - start
            ok = 0
            for line in out.splitlines():
                if line.startswith("status codes:"):
                    ok = int(line.split()[2])  # "status codes: N 2xx, ..."
            for i, uri in enumerate(uris):
                rid = uri.rsplit("=", 1)[1]
                # h2load does not say which requests failed: the first `ok` count as 200.
                record(kind, rid, 200 if i < ok else 0, secs / batch, None if i < ok else "h2load failure")


threads = []
for kind in ("static", "proxy", "tls", "h2"):
    url = getattr(args, kind)
    if url:
        t = threading.Thread(target=h2_worker if kind == "h2" else http_worker, args=(kind, url), daemon=True)
        t.start()
        threads.append(t)
next_report = t0 + args.interval
while any(t.is_alive() for t in threads):
    time.sleep(0.2)
    now = time.monotonic()
    if now >= next_report or not any(t.is_alive() for t in threads):
        with lock:
            parts = [f"{k} ok {w[0]} failed {w[1]} slowest {w[2] * 1000:.0f} ms" for k, w in sorted(window.items())]
            window.clear()
        print(f"[{args.label} t={now - t0:5.0f}s] " + "; ".join(parts), flush=True)
        next_report = now + args.interval
summary = {"stats": stats, "failures": reasons,
           "failed": sum(s["failed"] for s in stats.values()),
           "sent": sum(s["sent"] for s in stats.values())}
print(json.dumps(summary), flush=True)
