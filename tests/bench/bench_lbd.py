#!/usr/bin/env python3
"""lbd against HAProxy (Debian's), side by side in one run, on the same
backends (two testhttpd servers answering a small response), the same
worker or thread count (1, then 2), the same wrk parameters.

Rows: HTTP keep-alive round-robin; a new connection per request; TLS
keep-alive; TLS handshakes per second (ECDSA P-256, no resumption: tickets
and session cache off on both); TCP mode carrying a 1 MiB response (lbd
splices bulk transfers by default, HAProxy is given `option splice-auto`
to do the same); RSS per 1,000 idle connections at 10,000.  Each row alternates lbd and
HAProxy BENCH_ROUNDS times (default 3) and compares medians;
BENCH_ROWS='TLS keep-alive, 1 w' (a regular expression) runs only the
rows it finds, for an A/B of one row.  Both do the same work on a
request: HAProxy is given the X-Forwarded-For and -Proto that lbd adds
by default (replacing any a client sent), as an edge HAProxy would.

Those rows measure at saturation, where wrk (a closed loop of 50
connections) queues on its own CPU, more so against the faster server.
The "think" rows offer both a load below saturation (each connection
waits 2 ms between keep-alive requests, 40 ms between new TLS
connections): the rates are then nearly the same, set by wrk's
millisecond timer more than by the proxy, and the latencies (p99, and
the mean on the line under the row) are the proxy's own.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BIN, ROUNDS, Server, alternate, free_port, idle_rss,
                      machine, table, wanted)


def backends(d):
    ports = []
    srvs = []
    for i in (1, 2):
        p = free_port()
        conf = os.path.join(d, f"be{i}.conf")
        with open(conf, "w") as f:
            f.write(f"workers 1\npidfile \"{d}/be{i}.pid\"\n"
                    f"listen 127.0.0.1:{p}\n")
        srvs.append(Server(f"be{i}", [os.path.join(BIN, "testhttpd"), "-d",
                                      "-f", conf], p, cpu=1))
        ports.append(p)
    return ports, srvs


def lbd(d, workers, port, tlsport, tcpport, be, tickets):
    conf = os.path.join(d, f"lbd-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""workers {workers}
pidfile "{d}/lbd-{port}.pid"
control off
log no
user nobody
frontend www {{
	listen 127.0.0.1:{port}
	listen 127.0.0.1:{tlsport} tls
	tls {{
		certificate "{d}/cert.pem" key "{d}/key.pem"
		tickets {"yes" if tickets else "no"}
	}}
	backend webs
}}
frontend raw {{
	mode tcp
	listen 127.0.0.1:{tcpport}
	backend tcpb
}}
backend webs {{
	server s1 127.0.0.1:{be[0]}
	server s2 127.0.0.1:{be[1]}
}}
backend tcpb {{
	mode tcp
	server s1 127.0.0.1:{be[0]}
	server s2 127.0.0.1:{be[1]}
}}
""")
    return [os.path.join(BIN, "lbd"), "-d", "-f", conf]


def haproxy(d, threads, port, tlsport, tcpport, be, tickets):
    conf = os.path.join(d, f"haproxy-{port}.cfg")
    with open(conf, "w") as f:
        f.write(f"""global
	nbthread {threads}
	maxconn 19000
	ulimit-n 20000
	no strict-limits
	{"" if tickets else "tune.ssl.cachesize 0"}
	ssl-default-bind-options {"" if tickets else "no-tls-tickets"} ssl-min-ver TLSv1.2
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
frontend www
	# the same work as lbd's defaults (x-forwarded-for replace,
	# x-forwarded-proto yes): what an operator's edge HAProxy has
	http-request del-header X-Forwarded-For
	http-request del-header X-Forwarded-Proto
	http-request del-header Forwarded
	option forwardfor
	http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
	http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
	bind 127.0.0.1:{port}
	bind 127.0.0.1:{tlsport} ssl crt {d}/combined.pem
	default_backend webs
frontend raw
	mode tcp
	option splice-auto
	bind 127.0.0.1:{tcpport}
	default_backend tcpb
backend webs
	balance roundrobin
	server s1 127.0.0.1:{be[0]}
	server s2 127.0.0.1:{be[1]}
backend tcpb
	mode tcp
	balance roundrobin
	server s1 127.0.0.1:{be[0]}
	server s2 127.0.0.1:{be[1]}
""")
    return ["haproxy", "-db", "-f", conf]


def cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "2",
                    "-subj", "/CN=localhost"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{d}/combined.pem", "w") as f:
        f.write(open(f"{d}/cert.pem").read() + open(f"{d}/key.pem").read())


def row(label, pairs, make_url, workers, headers=(), think_ms=0):
    return alternate(label, [(n, srv, make_url(ports))
                             for n, srv, ports in pairs], workers,
                     headers=headers, think_ms=think_ms)


def main():
    d = tempfile.mkdtemp(prefix="bench-lbd-")
    os.chmod(d, 0o755)
    cert(d)
    print(f"lbd vs HAProxy on {machine()}, {ROUNDS} rounds of "
          f"{os.environ.get('BENCH_SECONDS', '5')} s, medians; proxies on "
          "CPU 0, wrk and the backends on CPU 1 (1 worker)")
    be, besrv = backends(d)
    try:
        for workers in (1, 2):
            cpu = 0 if workers == 1 else None
            for tickets in (True, False):
                pl = (free_port(), free_port(), free_port())
                ph = (free_port(), free_port(), free_port())
                pairs = [
                    ("lbd", Server("lbd", lbd(d, workers, *pl, be, tickets),
                                   pl[0], cpu), pl),
                    ("haproxy", Server("haproxy", haproxy(d, workers, *ph,
                                       be, tickets), ph[0], cpu), ph),
                ]
                if tickets:
                    rows = [
                        row(f"HTTP keep-alive rr, {workers} w", pairs,
                                  lambda p: f"http://127.0.0.1:{p[0]}/hello",
                                  workers),
                        row(f"HTTP new conn/request, {workers} w",
                                  pairs, lambda p:
                                  f"http://127.0.0.1:{p[0]}/hello", workers,
                                  headers=("Connection: close",)),
                        row(f"TLS keep-alive, {workers} w", pairs,
                                  lambda p: f"https://127.0.0.1:{p[1]}/hello",
                                  workers),
                        row(f"TCP mode 1 MiB, {workers} w", pairs,
                                  lambda p:
                                  f"http://127.0.0.1:{p[2]}/source/1048576",
                                  workers),
                        row(f"TLS keep-alive, 2 ms think, {workers} w",
                                  pairs, lambda p:
                                  f"https://127.0.0.1:{p[1]}/hello", workers,
                                  think_ms=2),
                    ]
                else:
                    rows = [row(f"TLS handshakes/s (full), {workers} w",
                                      pairs, lambda p:
                                      f"https://127.0.0.1:{p[1]}/hello",
                                      workers,
                                      headers=("Connection: close",)),
                            row(f"TLS handshakes, 40 ms think, "
                                      f"{workers} w", pairs, lambda p:
                                      f"https://127.0.0.1:{p[1]}/hello",
                                      workers, headers=("Connection: close",),
                                      think_ms=40)]
                table(rows, "lbd", "haproxy")
                for _, s, _ in pairs:
                    s.stop()
                if workers == 1 and tickets and \
                        wanted("RSS per 1k idle conns, 1 w"):
                    mem = idle_rss(
                        [("lbd", lambda: Server("lbd", lbd(
                            d, 1, *pl, be, tickets), pl[0], cpu)),
                         ("haproxy", lambda: Server("haproxy", haproxy(
                             d, 1, *ph, be, tickets), ph[0], cpu))],
                        b"GET /hello HTTP/1.1\r\nHost: b\r\n\r\n")
                    print(f"{'RSS per 1k idle conns, 1 w':<36} "
                          f"{mem['lbd']:>9.2f}M {mem['haproxy']:>9.2f}M "
                          f"{mem['haproxy'] / mem['lbd'] if mem['lbd'] else 0:>6.2f}"
                          "  (ratio: haproxy / lbd, higher is better)")
    finally:
        for s in besrv:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
