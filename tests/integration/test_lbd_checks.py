"""lbd's health checks (lbd/check*.c) through the real daemon: one checker
process checks testhttpd, echod and TLS backends; state changes are read
back from the test run's syslog, lbdctl and /metrics.  A server killed
under a client loop goes DOWN after `fall` checks with no failed request,
comes back UP after `rise`; HTTP status lists and body expectations;
TLS handshakes and HTTP over TLS; send/expect and TCP connects; the state
kept across a reload."""
import os
import re
import signal
import subprocess
import threading
import time

from harness import (workdir, SLOW, alive, children, cmdline, free_port,
                     wait_for, wait_port)
from httpc import HttpTest, get, make_cert
from lbdtest import ListenServer

BACKEND = """
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
server-name "{name}"
{extra}
"""

ECHOD = """
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
prefix "echo: "
"""

LBD = """
workers 2
pidfile "@PIDFILE@"
control "@DIR@/lbd.sock"
stats 127.0.0.1:{stats}
frontend web {{
    mode {mode}
    listen 127.0.0.1:{port}
    backend {first}
}}
{backends}
"""

INTERVAL = 300          # ms, the checks of most tests
FALL = 3
RISE = 2


class LbdCase(HttpTest):
    """Backends, an lbd in front, and ways to see what its checker did."""

    def backend(self, name, extra=""):
        port = free_port()
        d = self.daemon("testhttpd", BACKEND.format(port=port, name=name,
                        extra=extra), name=name)
        d.start()
        d.port = port
        d.addr = f"127.0.0.1:{port}"
        wait_port("127.0.0.1", port)
        return d

    def lbd(self, backends, first="webs", mode="http"):
        self.port = free_port()
        self.stats = free_port()
        d = self.daemon("lbd", LBD.format(port=self.port, stats=self.stats,
                                          first=first, backends=backends,
                                          mode=mode))
        d.start()
        d.wait_workers(2)
        wait_port("127.0.0.1", self.port)
        self.lb = d
        self.sock = os.path.join(self.dir, "lbd.sock")
        self.seen_checkers = set()
        return d

    def checker(self):
        def one():
            c = [p for p in children(self.lb.pid)
                 if "checker" in cmdline(p)]
            return c[0] if len(c) == 1 else None
        pid = wait_for(one, 5, what="the checker process")
        self.seen_checkers.add(pid)
        return pid

    def ctl(self, *words):
        p = subprocess.run([os.path.join(os.path.dirname(self.lb.prog),
                                         "lbdctl"), "-s", self.sock,
                            *words], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10 * SLOW)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def servers(self):
        """show servers as {"backend/server": {column: value}}."""
        rc, out, err = self.ctl("show", "servers")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        cols = lines[0].split()
        res = {}
        for ln in lines[1:]:
            f = ln.split(None, len(cols) - 1)
            row = dict(zip(cols, f))
            res[f"{row['BACKEND']}/{row['SERVER']}"] = row
        return res

    def wait_checked(self, names):
        """Every server in <names> has a check result."""
        wait_for(lambda: all(self.servers()[n]["LASTCHECK"] != "-"
                             for n in names), 5,
                 what=f"first checks of {names}")

    def last_check(self, srv):
        """webs/<srv>'s last check, from /metrics (Unix time, s)."""
        return self.metrics()[("lbd_server_last_check_timestamp_seconds",
                               "webs", srv)]

    def reload_every(self, d, gap, seconds):
        """Reload lbd <d> every <gap> s (after each is done) for
        <seconds> s."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.syslog.mark()
            d.signal(signal.SIGHUP)
            self.syslog.wait(rf"lbd\[{d.pid}\]: reload done", 10)
            time.sleep(gap)

    def wait_state(self, name, state, timeout=5.0):
        wait_for(lambda: self.servers()[name]["STATE"] == state, timeout,
                 what=f"{name} {state}")

    def logged(self, pattern):
        """Lines of this lbd's checker that match <pattern>."""
        self.checker()
        pids = "|".join(str(p) for p in self.seen_checkers)
        rx = re.compile(rf"lbd\[(?:{pids})\]: checker 1: " + pattern)
        return [ln for ln in self.syslog.lines() if rx.search(ln)]

    def wait_log(self, pattern, timeout=5.0):
        try:
            return wait_for(lambda: self.logged(pattern), timeout,
                            step=0.01, what=f"syslog /{pattern}/")[0]
        except AssertionError:
            raise AssertionError(f"no checker line /{pattern}/ in:\n" +
                                 "\n".join(self.syslog.lines()[-30:]))

    def metrics(self):
        r = get(self.stats, "/metrics")
        self.assertEqual(r.status, 200)
        out = {}
        for ln in r.body.decode().splitlines():
            m = re.match(r'(\w+)\{backend="([^"]*)",server="([^"]*)"\} '
                         r'(\S+)$', ln)
            if m:
                out[(m.group(1), m.group(2), m.group(3))] = \
                    float(m.group(4))
        return out


def kill_now(d):
    """SIGKILL a daemon, its master first (so that it does not log its
    workers' deaths and respawn them), then the workers."""
    procs = children(d.pid)
    os.kill(d.pid, signal.SIGKILL)
    for p in procs:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(alive(p) for p in procs + [d.pid]), 5,
             what=f"{d.name} to die")


class ClientLoop:
    """Requests through lbd from <threads> clients, one connection each,
    until stopped: the failures and which server answered."""

    def __init__(self, port, threads=3):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.by_server = {}
        self.n = 0
        self.ts = [threading.Thread(target=self.run, daemon=True)
                   for _ in range(threads)]

    def run(self):
        while not self.stop.is_set():
            try:
                r = get(self.port, "/hello", timeout=5)
                fail = None if r.status == 200 else \
                    f"status {r.status}: {r.body!r}"
                s = r.header("Server")
            except Exception as e:    # noqa: BLE001 (any failure counts)
                fail, s = repr(e), None
            with self.lock:
                if fail is not None:
                    self.failures.append(fail)
                else:
                    self.by_server[s] = self.by_server.get(s, 0) + 1
                self.n += 1

    def __enter__(self):
        for t in self.ts:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.ts:
            t.join(10)


def check(kind, **opts):
    """A check line; string options go in single quotes, which the conf
    takes as they are: the check's own escapes (\\r \\n \\xHH) stay
    for lbd to decode."""
    words = " ".join(f"{k} '{v}'" if isinstance(v, str) else
                     (k if v is True else f"{k} {v}")
                     for k, v in opts.items())
    return f"check {kind} {words}"


class CheckTest(LbdCase):
    def test_killed_server_down_after_fall_up_after_rise(self):
        webs = [self.backend(f"web{i}") for i in (1, 2, 3)]
        ck = check("http", path="/hello", interval=f"{INTERVAL}ms",
                   timeout="200ms", rise=RISE, fall=FALL)
        self.lbd("backend webs {\n" + "\n".join(
            f"server {w.name} {w.addr}" for w in webs) + f"\n{ck}\n}}")
        names = [f"webs/web{i}" for i in (1, 2, 3)]
        self.wait_checked(names)
        self.assertEqual({n: r["STATE"] for n, r in self.servers().items()},
                         dict.fromkeys(names, "UP"))
        self.assertEqual(self.servers()["webs/web1"]["RESULT"], "HTTP 200")

        with ClientLoop(self.port) as loop:
            wait_for(lambda: len(loop.by_server) == 3, 5,
                     what="traffic on the three servers")
            t0 = time.monotonic()
            kill_now(webs[1])
            kill_now(webs[2])
            # refused, or reset when the kill caught a check in flight
            self.wait_log(r"server webs/web2 is DOWN: (connection refused|"
                          r"read: connection reset by peer)")
            self.wait_log(r"server webs/web3 is DOWN: (connection refused|"
                          r"read: connection reset by peer)")
            down = time.monotonic() - t0
            # both lines, in either order: 2 then 1 active left
            left = sorted(int(re.search(r"(\d) active left", ln).group(1))
                          for ln in self.logged(r"server webs/web[23] is "
                                                r"DOWN"))
            self.assertEqual(left, [1, 2])
            n = loop.n
            wait_for(lambda: loop.n > n + 20, 5, what="more requests")
        self.assertEqual(loop.failures, [], "requests failed during the "
                         "kill")
        # fall checks: after (fall-1) intervals, within fall intervals
        print(f"   DOWN after {down * 1000:.0f} ms "
              f"(interval {INTERVAL} ms, fall {FALL})")
        self.assertGreaterEqual(down, (FALL - 1) * INTERVAL / 1000 - 0.05)
        # (one interval of slack: the checker's timers, rsyslog and this
        # test's polling all add to it)
        self.assertLessEqual(down, ((FALL + 1) * INTERVAL + 250) / 1000 *
                             SLOW)
        srv = self.servers()
        self.assertEqual(srv["webs/web2"]["STATE"], "DOWN")
        self.assertEqual(srv["webs/web2"]["RESULT"], "connection refused")
        m = self.metrics()
        self.assertEqual(m[("lbd_server_up", "webs", "web1")], 1)
        self.assertEqual(m[("lbd_server_up", "webs", "web2")], 0)
        self.assertEqual(m[("lbd_server_status", "webs", "web1")], 1)
        self.assertEqual(m[("lbd_server_status", "webs", "web2")], 0)
        self.assertGreaterEqual(
            m[("lbd_server_check_failures_total", "webs", "web2")], FALL)
        self.assertEqual(
            m[("lbd_server_check_up_down_total", "webs", "web2")], 1)
        self.assertEqual(
            m[("lbd_server_check_up_down_total", "webs", "web1")], 0)
        self.assertEqual(m[("lbd_server_check_status", "webs", "web1")],
                         200)

        # back: the same address again, UP after rise checks
        webs[1].start()
        t1 = time.monotonic()
        wait_port("127.0.0.1", webs[1].port)
        self.wait_log(r"server webs/web2 is UP: HTTP 200, 2 active left")
        up = time.monotonic() - t1
        print(f"   UP after {up * 1000:.0f} ms (rise {RISE})")
        self.assertLessEqual(up, ((RISE + 1) * INTERVAL + 250) / 1000 *
                             SLOW)
        m = self.metrics()
        self.assertEqual(m[("lbd_server_up", "webs", "web2")], 1)
        self.assertEqual(
            m[("lbd_server_check_up_down_total", "webs", "web2")], 2)
        seen = {get(self.port, "/hello").header("Server")
                for _ in range(6)}
        self.assertEqual(seen, {"web1", "web2"})

    def canned(self, answer, hold=0):
        """A server that answers every connection with <answer>, and
        closes it <hold> seconds later."""
        srv = ListenServer()

        def serve(c):
            with c:
                try:
                    c.recv(4096)
                    c.sendall(answer)
                    time.sleep(hold)
                except OSError:
                    pass
        srv.serve = serve
        self.addCleanup(srv.close)
        return srv.addr

    def test_http_status_list_and_body(self):
        web = self.backend("web1")
        hints = self.canned(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n"
                            b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                            b"\r\nALIVE")
        cont = self.canned(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 No"
                           b"\r\nContent-Length: 0\r\n\r\n")
        # a chunked answer is whole at its last chunk, whether or not
        # the server closes then
        chunks = self.canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                             b"chunked\r\n\r\n3\r\nALI\r\n2\r\nVE\r\n"
                             b"0\r\n\r\n", hold=3)
        nochunk = self.canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                              b"chunked\r\n\r\n3\r\nALI\r\n0\r\n\r\n",
                              hold=3)
        echo_port = free_port()
        self.daemon("echod", ECHOD.format(port=echo_port)).start()
        wait_port("127.0.0.1", echo_port)
        iv = dict(interval="200ms", timeout="150ms", rise=1, fall=1)
        cases = {
            # backend: (check options, server, state, result)
            "ok": (dict(path="/hello"), web.addr, "UP", "HTTP 200"),
            "err500": (dict(path="/status/500"), web.addr, "DOWN",
                       "HTTP 500, expected 200-399"),
            "nf": (dict(path="/nowhere"), web.addr, "DOWN",
                   "HTTP 404, expected 200-399"),
            "nfok": (dict(path="/nowhere", status="200-399,404"),
                     web.addr, "UP", "HTTP 404"),
            "body": (dict(path="/hello", expect="hell"), web.addr, "UP",
                     'HTTP 200, "hell" found'),
            "nobody": (dict(path="/hello", expect="bye"), web.addr,
                       "DOWN", 'HTTP 200, no "bye" in the body'),
            # the request as the server got it (testhttpd's /head)
            "ua": (dict(path="/head", expect=r"User-Agent: lbd-check\r\n"),
                   web.addr, "UP",
                   'HTTP 200, "User-Agent: lbd-check\\x0d\\x0a" found'),
            "host": (dict(path="/head", expect=rf"Host: {web.addr}\r\n"),
                     web.addr, "UP", None),
            "vhost": (dict(path="/head", host="www.example.test",
                           expect=r"Host: www.example.test\r\n"
                                  r"User-Agent: lbd-check\r\n"
                                  r"Connection: close\r\n\r\n"),
                      web.addr, "UP", None),
            "head": (dict(method="HEAD", path="/hello"), web.addr, "UP",
                     "HTTP 200"),
            "nothttp": (dict(path="/"), f"127.0.0.1:{echo_port}", "DOWN",
                        "not an HTTP/1 answer"),
            # interim answers are skipped: the final one is judged
            "hints": (dict(path="/", expect="ALIVE"), hints, "UP",
                      'HTTP 200, "ALIVE" found'),
            "cont": (dict(path="/"), cont, "DOWN",
                     "HTTP 503, expected 200-399"),
            "chunks": (dict(path="/", expect="ALIVE"), chunks, "UP",
                       'HTTP 200, "ALIVE" found'),
            "nochunk": (dict(path="/", expect="ALIVE"), nochunk, "DOWN",
                        'HTTP 200, no "ALIVE" in the body'),
        }
        conf = ""
        for be, (opts, addr, _, _) in cases.items():
            conf += (f"backend {be} {{\nserver s {addr}\n" +
                     check("http", **opts, **iv) + "\n}\n")
        self.lbd(conf, first="ok")
        self.wait_checked([f"{be}/s" for be in cases])
        wait_for(lambda: all(self.servers()[f"{be}/s"]["STATE"] == st
                             for be, (_, _, st, _) in cases.items()), 3,
                 what="every verdict")
        srv = self.servers()
        for be, (_, _, state, result) in cases.items():
            self.assertEqual(srv[f"{be}/s"]["STATE"], state, be)
            if result is not None:
                self.assertEqual(srv[f"{be}/s"]["RESULT"], result, be)
        # a server never checked before goes by its first result
        self.wait_log(r"server err500/s is DOWN: HTTP 500, expected "
                      r"200-399, 0 active left")
        self.wait_log(r"backend err500 has no server available")
        m = self.metrics()
        self.assertEqual(m[("lbd_server_check_status", "nfok", "s")], 404)
        self.assertEqual(m[("lbd_server_check_status", "err500", "s")],
                         500)
        self.assertEqual(m[("lbd_server_up", "err500", "s")], 0)

    def test_tls_checks(self):
        certs = workdir("lbd-certs")
        crt, key = make_cert(certs, "srv", "ec", ["srv.test"])
        tls_port = free_port()
        web = self.backend("web1", extra=f"""
listen 127.0.0.1:{tls_port} tls
tls {{
    certificate "{crt}" key "{key}"
}}""")
        wait_port("127.0.0.1", tls_port)
        tls_addr = f"127.0.0.1:{tls_port}"
        iv = dict(interval="200ms", timeout="150ms", rise=1, fall=1)
        conf = f"""
backend hs {{
server s {tls_addr}
{check("tls", **iv)}
}}
backend hssni {{
server s {tls_addr}
{check("tls", host="srv.test", **iv)}
}}
backend https {{
server s {tls_addr}
{check("http", path="/hello", tls=True, **iv)}
}}
backend plain {{
server s {web.addr}
{check("tls", **iv)}
}}
backend httpplain {{
server s {tls_addr}
{check("http", path="/hello", **iv)}
}}
"""
        self.lbd(conf, first="hs")
        names = ["hs/s", "hssni/s", "https/s", "plain/s", "httpplain/s"]
        self.wait_checked(names)
        srv = self.servers()
        self.assertEqual(srv["hs/s"]["STATE"], "UP")
        self.assertRegex(srv["hs/s"]["RESULT"], r"^TLS handshake, TLSv1\.3$")
        self.assertEqual(srv["hssni/s"]["STATE"], "UP")
        self.assertEqual((srv["https/s"]["STATE"], srv["https/s"]["RESULT"]),
                         ("UP", "HTTP 200"))
        # a plain HTTP server answers a ClientHello with no handshake
        self.assertEqual(srv["plain/s"]["STATE"], "DOWN")
        self.assertRegex(srv["plain/s"]["RESULT"],
                         r"^TLS handshake failed|^timeout")
        # plain HTTP to a TLS port: what comes back is no HTTP answer
        self.assertEqual(srv["httpplain/s"]["STATE"], "DOWN")

    def test_send_expect_and_tcp(self):
        echo_port = free_port()
        self.daemon("echod", ECHOD.format(port=echo_port)).start()
        wait_port("127.0.0.1", echo_port)
        echo = f"127.0.0.1:{echo_port}"
        closed = f"127.0.0.1:{free_port()}"
        iv = dict(interval="200ms", timeout="150ms", rise=1, fall=1)
        backends = {
            "ping": (echo, check("send", send=r"PING\r\n",
                                 expect="echo: PING", **iv)),
            "pong": (echo, check("send", send=r"PING\n", expect="PONG",
                                 **iv)),
            "quit": (echo, check("send", send=r"quit\n", expect="PONG",
                                 **iv)),
            "sendonly": (echo, check("send", send=r"hello\n", **iv)),
            "tcp": (f"{echo}\nserver gone {closed}", check("tcp", **iv)),
        }
        self.lbd("".join(f"backend {be} {{\nmode tcp\nserver s {addr}\n"
                         f"{ck}\n}}\n"
                         for be, (addr, ck) in backends.items()),
                 first="ping", mode="tcp")
        names = ["ping/s", "pong/s", "quit/s", "sendonly/s", "tcp/s",
                 "tcp/gone"]
        self.wait_checked(names)
        wait_for(lambda: self.servers()["pong/s"]["RESULT"] != "-", 3)
        srv = self.servers()
        self.assertEqual((srv["ping/s"]["STATE"], srv["ping/s"]["RESULT"]),
                         ("UP", 'got "echo: PING"'))
        # echod answers "echo: PING" and waits: no PONG within the timeout
        self.assertEqual((srv["pong/s"]["STATE"], srv["pong/s"]["RESULT"]),
                         ("DOWN", "timeout after 150 ms"))
        # echod closes on "quit": the answer ends without PONG
        self.assertEqual((srv["quit/s"]["STATE"], srv["quit/s"]["RESULT"]),
                         ("DOWN", 'no "PONG" in 0 bytes of answer'))
        self.assertEqual(srv["sendonly/s"]["STATE"], "UP")
        self.assertEqual((srv["tcp/s"]["STATE"], srv["tcp/s"]["RESULT"]),
                         ("UP", "connected"))
        self.assertEqual((srv["tcp/gone"]["STATE"],
                          srv["tcp/gone"]["RESULT"]),
                         ("DOWN", "connection refused"))
        self.wait_log(r"server tcp/gone is DOWN: connection refused, "
                      r"1 active left")

    def test_check_on_another_port(self):
        """check ... port N (HAProxy's "check port"): the servers are
        checked on that port of their address, their traffic goes to
        their own.  web2's host has no health port open: DOWN while its
        traffic port answers; the health port closed: web1 DOWN too."""
        web1 = self.backend("web1")
        health = self.backend("health")
        hp = health.port
        tp = free_port()
        web2 = self.daemon("testhttpd", BACKEND.format(
            port=tp, name="web2", extra="").replace("127.0.0.1", "127.0.0.3"),
            name="web2")
        web2.start()
        wait_port("127.0.0.3", tp)
        ck = check("http", path="/hello", port=hp, interval="300ms",
                   timeout="200ms", rise=1, fall=1)
        # web1 is checked on 127.0.0.1:hp (health), web2 on 127.0.0.3:hp
        self.lbd(f"backend webs {{\nserver web1 {web1.addr}\n"
                 f"server web2 127.0.0.3:{tp}\n{ck}\n}}")
        self.wait_log(rf"server webs/web2 is DOWN: connection refused")
        self.wait_state("webs/web1", "UP")
        got = {get(self.port, "/hello").header("Server") for _ in range(6)}
        self.assertEqual(got, {"web1"})
        kill_now(health)
        self.wait_log(rf"server webs/web1 is DOWN: connection refused, "
                      rf"0 active left")
        self.assertEqual(get(self.port, "/hello").status, 503)
        # a unix-socket server has no port to check on
        d = self.daemon("lbd", LBD.format(
            port=free_port(), stats=free_port(), first="webs", mode="http",
            backends=f"backend webs {{\nserver u unix:/tmp/x.sock\n"
                     f"{ck}\n}}"), name="bad")
        rc, out = d.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"bad\.conf:\d+: check port: server u is a "
                              r"unix socket")

    def test_state_kept_across_reload(self):
        web1 = self.backend("web1")
        bk = self.backend("bk")
        dead = f"127.0.0.1:{free_port()}"
        ck = check("http", path="/hello", interval=f"{INTERVAL}ms",
                   timeout="200ms", rise=RISE, fall=FALL)
        conf = (f"backend webs {{\nserver web1 {web1.addr}\n"
                f"server web2 {dead}\nserver bk {bk.addr} backup\n{ck}\n}}")
        d = self.lbd(conf)
        self.wait_log(r"server webs/web2 is DOWN: connection refused, "
                      r"1 active and 1 backup left")
        old = self.checker()
        self.assertEqual(self.servers()["webs/web2"]["STATE"], "DOWN")
        self.syslog.mark()
        with ClientLoop(self.port) as loop:
            d.signal(signal.SIGHUP)
            wait_for(lambda: [ln for ln in self.syslog.lines()
                              if f"lbd[{d.pid}]: reload done" in ln], 10,
                     what="the reload")
            new = wait_for(lambda: self.checker() != old and
                           self.checker(), 5, what="a new checker")
            self.assertFalse(alive(old) and "checker" in cmdline(old) and
                             old in children(d.pid), "old checker stays")
            # right after the reload, and over a few intervals: DOWN
            end = time.monotonic() + 3 * INTERVAL / 1000
            while time.monotonic() < end:
                self.assertEqual(self.servers()["webs/web2"]["STATE"],
                                 "DOWN")
                self.assertEqual(self.metrics()[("lbd_server_up", "webs",
                                                 "web2")], 0)
                time.sleep(0.05)
            wait_for(lambda: loop.n > 10, 5, what="requests")
        self.assertNotEqual(new, old)
        self.assertEqual(self.logged(r"server webs/web2 is (UP|DOWN)"), [])
        self.assertEqual(loop.failures, [])
        self.assertEqual(set(loop.by_server), {"web1"})
        self.assertEqual(self.metrics()[("lbd_server_check_up_down_total",
                                         "webs", "web2")], 1)

    def test_frequent_reloads_do_not_put_checks_off(self):
        """Each new checker used to put off the first check of the k-th
        of n servers by k/n of an interval: reloaded more often than
        that, the last servers were never checked again.  It now checks
        each when due by its last check (kept in shared memory)."""
        webs = [self.backend(f"web{i}") for i in (1, 2)]
        ck = check("http", path="/hello", interval="1500ms",
                   timeout="200ms", rise=1, fall=1)
        d = self.lbd("backend webs {\n" + "\n".join(
            f"server {w.name} {w.addr}" for w in webs) + f"\n{ck}\n}}")
        self.wait_checked(["webs/web1", "webs/web2"])
        first = self.last_check("web2")
        # a reload every 400 ms, for 4 s: web2's first check in each new
        # checker used to come 750 ms after its start
        self.reload_every(d, 0.4, 4)
        self.assertGreaterEqual(self.last_check("web2") - first, 1.5,
                                "web2 was not checked during the reloads")

    def test_a_check_in_flight_at_a_reload_is_not_dropped(self):
        """A checker retired by a reload dropped the check it had in
        flight: the server's last check stayed where it was, the next
        checker found it overdue and put it off by its slot, and with
        reloads closer than that it was never checked again.  Here web2
        answers its checks after 300 ms, and lbd reloads every 400 ms."""
        web1 = self.backend("web1")
        web2 = ListenServer()
        n = [0]

        def slow(c):
            with c:
                try:
                    c.recv(4096)
                    n[0] += 1
                    if n[0] > 1:
                        time.sleep(0.3)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              b"Connection: close\r\n\r\nok")
                except OSError:
                    pass
        web2.serve = slow
        self.addCleanup(web2.close)
        ck = check("http", path="/hello", interval="1500ms",
                   timeout="400ms", rise=1, fall=1)
        d = self.lbd(f"backend webs {{\nserver web1 {web1.addr}\n"
                     f"server web2 {web2.addr}\n{ck}\n}}")
        self.wait_checked(["webs/web1", "webs/web2"])
        first = self.last_check("web2")
        self.reload_every(d, 0.4, 6)
        self.assertGreaterEqual(self.last_check("web2") - first, 3,
                                "web2 was not checked during the reloads")

    def test_one_check_at_a_time_across_a_reload(self):
        """A new checker found a server overdue while the retiring one
        still had its check in flight, and checked it again at once: two
        results for one interval (a server failing checks went DOWN
        before <fall> intervals).  It now waits for that check's result.
        Here web2's checks take 800 ms (the first answers at once), lbd
        reloads during the second, and no two checks may overlap."""
        web2 = ListenServer()
        spans, lock = [], threading.Lock()

        def slow(c):
            with c:
                t0 = time.monotonic()
                try:
                    c.settimeout(5)
                    c.recv(4096)
                    with lock:
                        first = not spans
                        spans.append([t0, None])
                        me = spans[-1]
                    if not first:
                        time.sleep(0.8)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              b"Connection: close\r\n\r\nok")
                    c.settimeout(2)
                    c.recv(100)         # the checker closes
                except OSError:
                    pass
                me[1] = time.monotonic()
        web2.serve = slow
        self.addCleanup(web2.close)
        ck = check("http", path="/hello", interval="1s",
                   timeout="1s", rise=1, fall=1)
        d = self.lbd(f"backend webs {{\nserver web2 {web2.addr}\n{ck}\n}}")
        wait_for(lambda: len(spans) >= 2, 5, what="the second check")
        self.syslog.mark()
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{d.pid}\]: reload done", 10)
        wait_for(lambda: len(spans) >= 4 and spans[3][1], 10,
                 what="two checks after the reload")
        got = [(round(a - spans[0][0], 2), b and round(b - spans[0][0], 2))
               for a, b in spans]
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertIsNotNone(end, got)
            self.assertGreaterEqual(start, end - 0.05,
                                    f"checks overlap: {got}")
        self.assertEqual(self.servers()["webs/web2"]["STATE"], "UP")

    def test_checks_that_time_out_keep_their_interval_across_reloads(self):
        """A server whose checks time out: the new checker of a reload
        went by the last result, which such a check writes at its
        timeout, and started its first check as the old one timed out
        (two failures in one interval).  Checks now go an interval
        apart, by their starts, whichever checker runs them."""
        web2 = ListenServer()
        starts = []

        def mute(c):
            with c:
                starts.append(time.monotonic())
                c.settimeout(5)
                try:
                    while c.recv(4096):
                        pass
                except OSError:
                    pass
        web2.serve = mute
        self.addCleanup(web2.close)
        ck = check("http", path="/hello", interval="2s", timeout="1s",
                   rise=1, fall=100)
        d = self.lbd(f"backend webs {{\nserver web2 {web2.addr}\n{ck}\n}}")
        for n in (2, 3, 4):
            wait_for(lambda: len(starts) >= n, 5, what=f"check {n}")
            time.sleep(0.2)
            self.syslog.mark()
            d.signal(signal.SIGHUP)
            self.syslog.wait(rf"lbd\[{d.pid}\]: reload done", 10)
        wait_for(lambda: len(starts) >= 6, 8, what="the checks after")
        gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
        self.assertGreaterEqual(min(gaps), 1.9, gaps)

    def test_removed_check_leaves_no_server_down(self):
        # only the checker sets a server DOWN: a reload that removes the
        # check must not leave one DOWN for good (it did, and lbdctl could
        # not help: only a restart)
        web1, web2 = self.backend("web1"), self.backend("web2")
        ck = check("http", path="/hello", interval=f"{INTERVAL}ms",
                   timeout="200ms", rise=RISE, fall=FALL)
        d = self.lbd(f"backend webs {{\nserver web1 {web1.addr}\n"
                     f"server web2 {web2.addr}\n{ck}\n}}")
        self.wait_checked(["webs/web1", "webs/web2"])
        kill_now(web2)
        self.wait_state("webs/web2", "DOWN")
        web2.start()
        conf = open(d.conf_path).read()
        self.assertIn(ck, conf)
        d.write_conf(conf.replace(ck, ""))
        self.syslog.mark()
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{d.pid}\]: reload done", 10)
        self.wait_state("webs/web2", "UP")
        got = {get(self.port, "/hello").header("Server") for _ in range(6)}
        self.assertEqual(got, {"web1", "web2"})
        # nor is a last check shown any more, where the check is gone
        m = self.metrics()
        for srv in ("web1", "web2"):
            self.assertEqual(m[("lbd_server_check_status", "webs", srv)], 0)
            self.assertEqual(m[("lbd_server_last_check_timestamp_seconds",
                                "webs", srv)], 0)
        page = get(self.stats, "/").body.decode()
        self.assertNotIn("ago", page)
        self.assertEqual(page.count("<td>no check</td>"), 2)

