"""Helpers of appd's integration tests (this module has no tests of its
own): an appd with the test module (tests/apps/testapp.c) and a status
listener, a webd in front of it, and small HTTP clients."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import (BIN, BUILD, TOP, SLOW, DaemonTest,  # noqa: E402
                     free_port, wait_for, wait_port)
from httpc import Closed, Conn, get  # noqa: E402,F401

TESTAPP = os.path.join(TOP, BUILD, "lib", "testapp.so")
NOTES = os.path.join(TOP, BUILD, "lib", "notes.so")

APPD = """
pidfile "@PIDFILE@"
listen {listen}
status 127.0.0.1:{sport}
{extra}
app test {{
	module "{module}"
	{appextra}
}}
route "/t/" app test
{routes}
"""

WEBD = """
workers 1
pidfile "@PIDFILE@"
server "site" default {{
	listen 127.0.0.1:{port}
	proxy app
}}
upstream app {{
{servers}
	{upextra}
}}
"""


class Appd:
    """An appd and its ports (port: the workers', sport: status)."""

    def __init__(self, test, extra="", appextra="", routes="", name="appd",
                 unix=False, module=TESTAPP, wrap=()):
        self.test = test
        self.port = free_port()
        self.sport = free_port()
        self.sock = os.path.join(test.dir, name + ".sock") if unix else None
        self.listen = f"unix:{self.sock} mode 0666" if unix else \
            f"127.0.0.1:{self.port}"
        self.extra, self.appextra, self.routes = extra, appextra, routes
        self.module = module
        self.d = test.daemon("appd", self.conf(), name=name, wrap=wrap)

    def conf(self):
        return APPD.format(listen=self.listen, sport=self.sport,
                           extra=self.extra, appextra=self.appextra,
                           routes=self.routes, module=self.module)

    def rewrite(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.d.write_conf(self.conf())

    def start(self, wait=True):
        self.d.start(wait=wait)
        wait_port("127.0.0.1", self.sport)
        if self.sock is None:
            wait_port("127.0.0.1", self.port)
        return self

    @property
    def pid(self):
        return self.d.pid

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def status(self):
        r = get(self.sport, "/status?json")
        assert r.status == 200, r
        return json.loads(r.body)

    def metrics(self):
        r = get(self.sport, "/metrics")
        assert r.status == 200, r
        out = {}
        for ln in r.body.decode().splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                out[k] = float(v)
        return out

    def workers(self):
        return self.d.workers()

    def wait_total(self, n, timeout=10.0):
        return wait_for(lambda: self.status()["total_processes"] == n and
                        len(self.workers()) == n, timeout,
                        what=f"{n} workers")


class Webd:
    def __init__(self, test, servers, upextra="", name="webd"):
        self.port = free_port()
        lines = "\n".join(f"\tserver {n} {a}" for n, a in servers)
        self.d = test.daemon("webd", WEBD.format(
            port=self.port, servers=lines, upextra=upextra), name=name)

    def start(self):
        self.d.start()
        wait_port("127.0.0.1", self.port)
        return self

    def get(self, path, **kw):
        return get(self.port, path, **kw)


class AppdTest(DaemonTest):
    def appd(self, **kw):
        return Appd(self, **kw)

    def webd(self, appd, upextra="", name="webd"):
        addr = f"unix:{appd.sock}" if appd.sock else \
            f"127.0.0.1:{appd.port}"
        return Webd(self, [("app1", addr)], upextra, name)


def raw_exchange(port, data, timeout=5.0):
    """Send bytes, return all bytes until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    out = b""
    try:
        s.sendall(data)
        while True:
            try:
                c = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not c:
                break
            out += c
    finally:
        s.close()
    return out


class Loop:
    """Clients asking in a loop, in threads, counting what failed."""

    def __init__(self, fn, threads=4):
        self.fn = fn
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.t = [threading.Thread(target=self.run, daemon=True)
                  for _ in range(threads)]

    def run(self):
        while not self.stop.is_set():
            try:
                good, what = self.fn()
            except Exception as e:      # noqa: BLE001
                good, what = False, repr(e)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failures.append(what)

    def __enter__(self):
        for t in self.t:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.t:
            t.join()


def wait_until(pred, timeout=5.0, what="condition"):
    return wait_for(pred, timeout, what=what)


def now():
    return time.monotonic()


__all__ = ["Appd", "AppdTest", "Closed", "Conn", "Loop", "Webd", "BIN",
           "NOTES", "SLOW", "TESTAPP", "get", "raw_exchange", "wait_for",
           "wait_until", "now"]
