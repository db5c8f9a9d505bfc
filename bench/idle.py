#!/usr/bin/env python3
"""idle.py PORT PID N: memory per idle keep-alive connection.

Opens N connections to 127.0.0.1:PORT, makes one `GET /index.html` on each (reading the
whole answer), holds them idle for 2 s, and prints "CONNECTIONS BYTES_PER_CONNECTION
MARGINAL SILENT": the growth of the resident set of PID and its children (nginx's worker
is a child of its master) divided by the connections that stayed open, and the growth over
the second half of them divided by their number (the cost of one more connection,
without fixed costs such as the allocator's first pages). The resident set is first let
settle (up to 5 s), so memory still being freed after an earlier load is not counted
against the connections. Then closes them. SILENT is measured first, the same way, with N
connections that have sent nothing yet (held 2 s: what a slowloris-style flood of silent
connections costs). Loopback only, bounded: 5 s per socket operation, stops at the first
refused connection."""
import os, resource, socket, sys, time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def settled(pid):
    last = rss(pid)
    for _ in range(10):
        time.sleep(0.5)
        now = rss(pid)
        if now == last:
            break
        last = now
    return last


before, socks = settled(pid), []
for i in range(n):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError:
        break
time.sleep(2)
silent = round((rss(pid) - before) * 1024 / max(len(socks), 1))
for s in socks:
    s.close()

before, socks, half = settled(pid), [], None
req = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for i in range(n):
    if i == n // 2:
        time.sleep(2)
        half = (len(socks), rss(pid))
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(req)
        buf = b""
        while b"</html>" not in buf:
            c = s.recv(65536)
            if not c:
                break
            buf += c
    except OSError:
        break
    socks.append(s)
time.sleep(2)
after = rss(pid)
marginal = 0
if half and len(socks) > half[0]:
    marginal = round((after - half[1]) * 1024 / (len(socks) - half[0]))
print(len(socks), round((after - before) * 1024 / max(len(socks), 1)), marginal, silent)
for s in socks:
    s.close()
time.sleep(0.5)
