"""lbd's frontend limits: the allow list applied before a byte is read
(the connection closed unanswered, counted in lbd_frontend_denied_total),
a per-source request rate (429, counted across workers; another source
is not limited), a per-source connection limit (503, with the
frontend's error page), the listener's maxconn (excess connections wait
in the listen queue), and the header and keep-alive timeouts (a
slowloris client gets its 408)."""
import os
import select
import signal
import socket
import time

from harness import SLOW, free_port, wait_for, wait_port
from httpc import (BCRYPT_PW, Closed, Conn, basic_auth, only_worker,
                   request_bytes, socket_owner)
from lbdtest import LbdTest, get, raw_closed


class LimitsTest(LbdTest):
    def on_worker(self, w, source=None):
        """A client connection accepted by lbd worker <w>."""
        ws = self.lb.wait_workers(2)
        with only_worker(ws, w):
            c = Conn(self.port, source=source)
            wait_for(lambda: socket_owner(c.local_port, self.port), 5,
                     what="the connection to be accepted")
        self.addCleanup(c.close)
        return c

    def test_acl_deny_before_any_byte(self):
        b1, = self.backends("b1")
        self.simple([b1], frontend="""
    deny 127.0.0.2
    allow 127.0.0.1 127.0.0.2 127.0.0.3
""")

        # the start's port probe (wait_port) is counted once a worker
        # took it, which under load may be after the first scrape
        def probed():
            m = self.metrics(settle=True)
            return m if m("lbd_frontend_connections_total",
                          frontend="www") >= 1 else None
        m0 = wait_for(probed, 5 * SLOW, what="the port probe to be counted")
        # denied at accept: closed without a byte sent by either side
        for src in ("127.0.0.2", "127.0.0.4"):
            t0 = time.monotonic()
            self.assertEqual(raw_closed(self.port, b"", source=src), b"",
                             src)
            self.assertLess(time.monotonic() - t0, 0.5 * SLOW)
        # and with a request sent: no answer either
        self.assertEqual(raw_closed(self.port, request_bytes("GET", "/hello"),
                                    source="127.0.0.2"), b"")
        # the first rule that matches wins; unlisted ones are denied
        # because the list allows some
        for src in ("127.0.0.1", "127.0.0.3"):
            self.assertEqual(get(self.port, "/hello", source=src).status,
                             200)
        m = self.metrics(settle=True)
        d = m("lbd_frontend_denied_total", frontend="www") - \
            m0("lbd_frontend_denied_total", frontend="www")
        self.assertEqual(d, 3)
        self.assertEqual(m("lbd_frontend_connections_total", frontend="www") -
                         m0("lbd_frontend_connections_total",
                            frontend="www"), 5)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="b1"), 2)
        # nothing of the denied ones in the request log
        lines = self.wait_logs(2)
        self.assertEqual({ln["client"] for ln in lines},
                         {"127.0.0.1", "127.0.0.3"})

    def test_rate_limit_429_per_source_across_workers(self):
        b1, = self.backends("b1")
        self.simple([b1], frontend="    rate-limit 3 60s")
        a, b = self.lb.wait_workers(2)
        # three requests through two workers, then a fourth: 429
        c1 = self.on_worker(a)
        c2 = self.on_worker(b)
        self.assertEqual([c1.request("GET", "/hello").status,
                          c2.request("GET", "/hello").status,
                          c1.request("GET", "/hello").status], [200] * 3)
        r = c2.request("GET", "/hello")
        self.assertEqual(r.status, 429)
        self.assertEqual(c1.request("GET", "/hello").status, 429)
        # another source has its own count
        for _ in range(3):
            self.assertEqual(get(self.port, "/hello",
                                 source="127.0.0.2").status, 200)
        self.assertEqual(get(self.port, "/hello", source="127.0.0.2").status,
                         429)
        c1.close()
        c2.close()
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_frontend_limited_total", frontend="www"), 3)
        self.assertEqual(m("lbd_frontend_responses_total", frontend="www",
                           code="4xx"), 3)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="b1"), 6)
        late = [ln for ln in self.wait_logs(9) if ln["status"] == 429]
        self.assertEqual(len(late), 3)
        self.assertEqual({(ln["backend"], ln["server"], ln["term"][:2])
                          for ln in late}, {("www", "<NOSRV>", "LR")})

    def test_route_rate_limit_counts_its_paths_across_workers(self):
        """route path /status/ ... { rate-limit 2 60s status 503 }: the
        requests its path matches, decoded and normalized, from one
        source and across workers, on top of the frontend's limit; the
        rest of the site is not limited; a reload that moves the route
        keeps its count."""
        b1, = self.backends("b1")
        body = """
frontend www {{
    listen 127.0.0.1:{{port}}
    rate-limit 100 60s
{routes}
    backend webs
}}
backend webs {{
%s
}}
""" % self.server_lines([b1])
        route = "    route path /status/ backend webs { rate-limit 2 60s " \
                "status 503 }"
        other = "    route host other.test backend webs"
        self.lbd(body.format(routes=other + "\n" + route))
        a, b = self.lb.wait_workers(2)
        c1 = self.on_worker(a)
        c2 = self.on_worker(b)
        self.assertEqual([c1.request("GET", "/status/200").status,
                          c2.request("GET", "/status/200").status],
                         [200, 200])
        # the third, however it is spelt or whichever route takes it
        # (a 503 closes its connection: one each)
        for path, host in (("/status/200", "a.test"),
                           ("/%73tatus/200", "a.test"),
                           ("/x/../status/200", "a.test"),
                           ("//status/200", "a.test"),
                           ("/status/200", "other.test")):
            r = get(self.port, path, host=host)
            self.assertEqual(r.status, 503, (path, host))
        # the rest of the site, and another source, are not limited
        for _ in range(5):
            self.assertEqual(get(self.port, "/hello").status, 200)
        self.assertEqual([get(self.port, "/status/200", source="127.0.0.2").status
                          for _ in range(3)], [200, 200, 503])
        # a target that cannot be normalized is not refused where only
        # limits are (no guard): it counts in every limit of its host
        self.assertEqual(get(self.port, "/%2fstatus/200").status, 503)
        self.assertEqual(get(self.port, "/caf%E9",
                             source="127.0.0.3").status, 404)
        c1.close()
        c2.close()
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_frontend_limited_total", frontend="www"), 7)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="b1"), 2 + 5 + 2 + 1)
        limited = [ln for ln in self.wait_logs(17) if ln["status"] == 503]
        self.assertEqual(len(limited), 7)
        self.assertEqual({(ln["server"], ln["term"][:2]) for ln in limited},
                         {("<NOSRV>", "LR")})
        # a reload that moves the route keeps its count
        lb = self.lb
        self.syslog.mark()
        lb.write_conf(self.lbd_conf(body.format(routes=route + "\n" + other)
                                    .replace("{port}", str(self.port))))
        lb.signal(signal.SIGHUP)
        ln = self.syslog.wait(rf"lbd\[{lb.pid}\]: (reload done|reload "
                              r"failed)", 20)
        self.assertIn("reload done", ln)
        self.assertEqual(get(self.port, "/status/200").status, 503)
        self.assertEqual(get(self.port, "/hello").status, 200)

    def test_route_rate_limits_count_only_what_passes(self):
        """Nested routes with limits: a request counts in each limit it
        matches when none is over, and in none when one is (it used to
        use up the wider route's budget).  Two routes that match the
        same requests cannot both have a limit (they would share a
        table and count twice)."""
        b1, = self.backends("b1")
        self.simple([b1], frontend="""
    route path /status/2 backend webs { rate-limit 2 60s }
    route path /status/ backend webs { rate-limit 5 60s }""")
        src = "127.0.0.4"
        self.assertEqual([get(self.port, "/status/200", source=src).status
                          for _ in range(4)], [200, 200, 429, 429])
        # /status/ has counted 2 of its 5
        self.assertEqual([get(self.port, "/status/404", source=src).status
                          for _ in range(4)], [404, 404, 404, 429])
        self.refused(f"""
frontend www {{
    listen 127.0.0.1:1
    route path /a/ backend webs {{ rate-limit 2 60s }}
    route path /a/ backend webs {{ rate-limit 9 1s }}
    backend webs
}}
backend webs {{
    server b1 {b1.addr}
}}""", "rate-limit 9 1s", "an earlier route matching the same requests "
                     "has a rate-limit too")

    def test_route_rate_limit_counts_wrong_passwords(self):
        """A limit on a route with basic auth counts the requests auth
        refuses: a client guessing passwords gets its 429 (before its
        guess is hashed), its right password too once over."""
        b1, = self.backends("b1")
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write(f"ops:{BCRYPT_PW}\n")
        self.simple([b1], frontend=f"""
    route path /status/ backend webs {{
        auth-basic "Ops" "{users}"
        rate-limit 3 60s
    }}""")
        src = "127.0.0.5"
        # a browser's first request, bare, is not counted
        self.assertEqual([get(self.port, "/status/200", source=src).status
                          for _ in range(4)], [401] * 4)
        got = [get(self.port, "/status/200", [basic_auth("ops", f"x{i}")],
                   source=src).status for i in range(4)]
        self.assertEqual(got, [401, 401, 401, 429])
        self.assertEqual(get(self.port, "/status/200",
                             [basic_auth("ops", "pw")], source=src).status,
                         429)
        # another client, with the password, is not held back
        self.assertEqual(get(self.port, "/status/200",
                             [basic_auth("ops", "pw")],
                             source="127.0.0.6").status, 200)

    def test_many_limited_frontends(self):
        # each limited frontend has a 3 MiB table in the shared segment:
        # a third one used not to fit ("shared memory full ... not
        # starting", while lbd -n said OK); eight run now, each counting
        # on its own
        b1, = self.backends("b1")
        ports = [free_port() for _ in range(8)]
        fes = "".join(f"""
frontend f{i} {{
    listen 127.0.0.1:{p}
    backend webs
    rate-limit 2 60s
    conn-limit 10
}}""" for i, p in enumerate(ports))
        self.lbd(fes + f"""
backend webs {{
{self.server_lines([b1])}
}}""", wait=False)
        for p in ports:
            wait_port("127.0.0.1", p)
            self.assertEqual([get(p, "/hello").status for _ in range(3)],
                             [200, 200, 429])

    def test_conn_limit_503_per_source(self):
        b1, = self.backends("b1")
        page = b"<p>too many connections</p>\n"
        path = os.path.join(self.dir, "503.html")
        with open(path, "wb") as f:
            f.write(page)
        self.simple([b1], frontend=f"    conn-limit 2\n"
                                   f"    error-page 503 {path}")
        a, b = self.lb.wait_workers(2)
        # two open connections, on the two workers
        c1 = self.on_worker(a)
        c2 = self.on_worker(b)
        for c in (c1, c2):
            self.assertEqual(c.request("GET", "/hello").status, 200)
        # the third: its request answered 503 (the error page), closed
        with Conn(self.port) as c3:
            r = c3.request("GET", "/hello")
            self.assertEqual((r.status, r.body), (503, page))
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c3.closed_within(2 * SLOW))
        # another source is not limited
        with Conn(self.port, source="127.0.0.2") as c4:
            self.assertEqual(c4.request("GET", "/hello").status, 200)
        # the two still work; one closes, room for another
        self.assertEqual(c1.request("GET", "/hello").status, 200)
        c2.close()
        wait_for(lambda: get(self.port, "/hello").status == 200, 3,
                 what="a slot back")
        m = self.metrics()
        self.assertGreaterEqual(m("lbd_frontend_limited_total",
                                  frontend="www"), 1)
        ln = [x for x in self.wait_logs(1, pred=lambda x: x["status"] ==
                                        503)]
        self.assertEqual((ln[0]["server"], ln[0]["term"][:2]),
                         ("<NOSRV>", "LR"))

    def test_conn_limit_counts_of_a_killed_worker_taken_back(self):
        """A worker killed holding a source's connections (a reload's
        shutdown timeout, a crash): the master takes its part of the
        count back, else the source stays refused until lbd restarts.
        The other worker's part stays counted."""
        import signal
        b1, = self.backends("b1")
        self.simple([b1], frontend="    conn-limit 2")
        a, b = self.lb.wait_workers(2)
        c1 = self.on_worker(a)
        c2 = self.on_worker(b)
        for c in (c1, c2):
            self.assertEqual(c.request("GET", "/hello").status, 200)
        self.assertEqual(get(self.port, "/hello").status, 503)
        self.killed = [a]
        os.kill(a, signal.SIGKILL)
        self.syslog.wait(rf"lbd\[{self.lb.pid}\]: worker \d \(pid {a}\) left "
                         r"[1-9]\d* connections? counted in shared memory: "
                         r"taken back", 5)
        wait_for(lambda: len(self.lb.workers()) == 2 and
                 a not in self.lb.workers(), 5, what="a new worker")
        # c2 still counts: one more fits, not two
        with Conn(self.port) as c3:
            self.assertEqual(c3.request("GET", "/hello").status, 200)
            self.assertEqual(get(self.port, "/hello").status, 503)
        self.assertEqual(c2.request("GET", "/hello").status, 200)

    def test_body_size_unlimited_by_default_and_limited_when_set(self):
        """lbd streams bodies: by default a 3 MiB upload passes whole (the
        servers have their own limits); max-body-size gives a 413 before
        the body is read."""
        b1, = self.backends("b1")
        self.simple([b1])
        body = os.urandom(3 << 20)
        r = get(self.port, "/echo", method="POST", body=body, timeout=20)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.lb.stop()
        self.simple([b1], frontend="    max-body-size 1m\n")
        r = get(self.port, "/echo", method="POST", body=body, timeout=20)
        self.assertEqual(r.status, 413)

    def test_frontend_maxconn_queues_connections(self):
        b1, = self.backends("b1")
        self.simple([b1], frontend="    maxconn 2")
        c1, c2 = Conn(self.port), Conn(self.port)
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        for c in (c1, c2):
            self.assertEqual(c.request("GET", "/hello").status, 200)
        # the third connects (the listen queue) but is not served
        c3 = Conn(self.port)
        self.addCleanup(c3.close)
        c3.send(request_bytes("GET", "/hello"))
        c3.s.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            c3.s.recv(1)
        c3.s.settimeout(5 * SLOW)
        c1.close()
        r = c3.read_response()
        self.assertEqual(r.status, 200)

    def test_header_timeout_slowloris_408(self):
        b1, = self.backends("b1")
        self.simple([b1], frontend="    header-timeout 600ms\n"
                                   "    keepalive-timeout 400ms")
        with Conn(self.port) as c:
            t0 = time.monotonic()
            c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
            # a field every 150 ms: trickling does not buy time
            got = None
            try:
                for i in range(20):
                    if select.select([c.s], [], [], 0.15)[0]:
                        break           # the answer is there
                    c.send(f"X-Slow-{i}: x\r\n")
            except OSError:
                pass
            took = time.monotonic() - t0
            try:
                got = c.read_response()
            except Closed:
                pass
        self.assertIsNotNone(got, "closed without a 408")
        self.assertEqual(got.status, 408)
        self.assertGreater(took, 0.55)
        self.assertLess(took, 0.6 + 0.5 * SLOW)
        ln = self.wait_logs(1, pred=lambda x: x["status"] == 408)[0]
        self.assertEqual((ln["frontend"], ln["server"], ln["term"][:2],
                          ln["request"]),
                         ("www", "<NOSRV>", "cR", "GET /hello HTTP/1.1"))
        self.assertGreaterEqual(ln["ta"], 550)
        # keep-alive: an idle connection closes after keepalive-timeout
        with Conn(self.port) as c:
            self.assertEqual(c.request("GET", "/hello").status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.closed_within(2 * SLOW))
            self.assertGreater(time.monotonic() - t0, 0.3)
        # a connection that never sends: closed after header-timeout
        t0 = time.monotonic()
        self.assertIsNotNone(raw_closed(self.port, b""))
        self.assertGreater(time.monotonic() - t0, 0.55)
