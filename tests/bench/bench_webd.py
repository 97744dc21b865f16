#!/usr/bin/env python3
"""webd against nginx (Debian's), side by side in one run: the same
files, the same number of workers (1, then 2), wrk on loopback, the
server on CPU 0 and wrk on CPU 1 for one worker (unpinned for two).

Rows: a 1 KiB file over keep-alive; a 1 KiB file with a new connection
per request; 64 KiB and 1 MiB files; 10,000 idle keep-alive connections
(RSS growth per 1,000 after one request each).  Each row alternates webd
and nginx BENCH_ROUNDS times (default 3) and compares their medians;
BENCH_ROWS (a regular expression) runs only the rows it finds.
The "think" row offers both a load below saturation (each of wrk's
connections waits 2 ms between requests), where the latencies (p99, and
the mean on the line under the row) are the server's own rather than
the queue of a saturated wrk; its rate is set by wrk's millisecond timer
more than by the server.  One more row, with one worker: the new
connections again, webd with `busy-poll 50us` (not the default): that
row is limited by wrk's CPU, part of which goes to waking the server.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BIN, ROUNDS, Server, alternate, free_port, idle_rss,
                      machine, table, wanted)


def setup(d):
    root = os.path.join(d, "www")
    os.makedirs(root)
    for name, size in (("1k", 1024), ("64k", 65536), ("1m", 1 << 20)):
        with open(os.path.join(root, name), "wb") as f:
            f.write(os.urandom(size))
    return root


def webd(d, root, workers, port, extra=""):
    conf = os.path.join(d, f"webd-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""workers {workers}
pidfile "{d}/webd-{port}.pid"
user nobody
access-log off
{extra}
server "bench" {{
	listen 127.0.0.1:{port}
	root "{root}"
}}
""")
    return [os.path.join(BIN, "webd"), "-d", "-f", conf]


def nginx(d, root, workers, port):
    conf = os.path.join(d, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes {workers};
daemon off;
pid {d}/nginx-{port}.pid;
error_log {d}/nginx-error.log;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	default_type application/octet-stream;
	server {{
		listen 127.0.0.1:{port} backlog=511;
		root {root};
	}}
}}
""")
    return ["nginx", "-c", conf]


def row(label, servers, path, workers, headers=(), think_ms=0):
    return alternate(label, [(n, srv, f"http://127.0.0.1:{srv.port}{path}")
                             for n, srv in servers], workers,
                     headers=headers, think_ms=think_ms)


def main():
    d = tempfile.mkdtemp(prefix="bench-webd-")
    os.chmod(d, 0o755)
    root = setup(d)
    print(f"webd vs nginx on {machine()}, {ROUNDS} rounds of "
          f"{os.environ.get('BENCH_SECONDS', '5')} s, medians")
    try:
        for workers in (1, 2):
            cpu = 0 if workers == 1 else None
            pw, pn = free_port(), free_port()
            servers = [
                ("webd", Server("webd", webd(d, root, workers, pw), pw,
                                cpu)),
                ("nginx", Server("nginx", nginx(d, root, workers, pn), pn,
                                 cpu)),
            ]
            rows = [
                row(f"1 KiB keep-alive, {workers} worker(s)", servers,
                    "/1k", workers),
                row(f"1 KiB new conn/request, {workers} w", servers, "/1k",
                    workers, headers=("Connection: close",)),
                row(f"64 KiB keep-alive, {workers} w", servers, "/64k",
                    workers),
                row(f"1 MiB keep-alive, {workers} w", servers, "/1m",
                    workers),
                row(f"1 KiB keep-alive, 2 ms think, {workers} w", servers,
                    "/1k", workers, think_ms=2),
            ]
            if workers == 1 and wanted("1 KiB new conn, busy-poll 50us"):
                # The new-connection row is limited by wrk's CPU, which
                # pays for waking a sleeping server at each connection
                # (on loopback the handshake's last ACK wakes it in wrk's
                # context): a server that busy-polls is not asleep.  Not
                # the default (it costs the server's CPU): a row apart.
                pb = free_port()
                bp = Server("webd-bp", webd(d, root, 1, pb,
                                            "busy-poll 50us"), pb, cpu)
                rows.append(row("1 KiB new conn, busy-poll 50us, 1 w",
                                [("webd", bp), servers[1]], "/1k", 1,
                                headers=("Connection: close",)))
                bp.stop()
            table(rows, "webd", "nginx")
            for _, s in servers:
                s.stop()
            if workers == 1 and wanted("RSS per 1k idle conns, 1 w"):
                mem = idle_rss(
                    [("webd", lambda: Server("webd", webd(d, root, 1, pw),
                                             pw, cpu)),
                     ("nginx", lambda: Server("nginx", nginx(d, root, 1, pn),
                                              pn, cpu))],
                    b"GET /1k HTTP/1.1\r\nHost: b\r\n\r\n")
                print(f"{'RSS per 1k idle conns, 1 w':<36} "
                      f"{mem['webd']:>9.2f}M {mem['nginx']:>9.2f}M "
                      f"{mem['nginx'] / mem['webd'] if mem['webd'] else 0:>6.2f}"
                      "  (ratio: nginx / webd, higher is better)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
