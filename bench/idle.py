#!/usr/bin/env python3
"""idle.py PORT PID N: memory per idle keep-alive connection.

Opens N connections to 127.0.0.1:PORT, makes one `GET /index.html` on each (reading the
whole answer), holds them idle for 2 s, and prints "CONNECTIONS BYTES_PER_CONNECTION": the
growth of the resident set of PID and its children (nginx's worker is a child of its
master) divided by the connections that stayed open. Then closes them. Loopback only,
bounded: 5 s per socket operation, stops at the first refused connection."""
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


before, socks = rss(pid), []
req = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for _ in range(n):
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
print(len(socks), round((after - before) * 1024 / max(len(socks), 1)))
for s in socks:
    s.close()
time.sleep(0.5)
