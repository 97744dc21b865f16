"""What lbd shows of itself: /metrics parsed line by line (responses by
status class, requests per server, bytes, sessions, cumulative
histograms, server state), the httplog line of each request read back
from the test run's syslog and parsed field by field (client:port, date,
frontend, backend/server, the five timers, status, bytes, termination
state, connection counts, the escaped request line), the stats page
(HTML, a row per frontend, backend and server) and /healthz."""
import datetime
import os
import socket
import threading
import time

from harness import SLOW, free_port, wait_for
from httpc import (BCRYPT_PW, Conn, basic_auth, request_bytes,
                   scripted_server)
from lbdtest import (CHECK, LbdTest, Metrics, StatsPage, dead_addr, get,
                     kill_now, raw_closed)


class ObserveTest(LbdTest):
    def setup_site(self, top=""):
        self.s1, self.s2 = self.backends("s1", "s2")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
frontend other {{
    listen 127.0.0.1:{self.other_port}
    backend spare
}}
backend webs {{
{self.server_lines([self.s1, self.s2])}
    server gone {dead_addr()}
    {CHECK}
}}
backend spare {{
    server s2 {self.s2.addr}
}}
""", top=top)
        self.wait_state("webs/gone", "DOWN")

    def setUp(self):
        super().setUp()
        self.other_port = free_port()

    def test_metrics(self):
        self.setup_site()
        m0 = self.metrics()
        self.assertEqual(m0("lbd_server_up", backend="webs", server="s1"), 1)
        self.assertEqual(m0("lbd_server_up", backend="webs", server="gone"),
                         0)
        self.assertEqual(m0("lbd_server_status", backend="webs",
                            server="gone"), 0)
        self.assertEqual(m0("lbd_server_check_status", backend="webs",
                            server="s1"), 200)
        self.assertEqual(m0("lbd_server_weight", backend="webs",
                            server="s2"), 1)
        self.assertGreater(m0("lbd_server_last_check_timestamp_seconds",
                              backend="webs", server="s1"),
                           time.time() - 5)
        # HAProxy's vocabulary: one HELP and TYPE per family
        self.assertEqual(m0.types["lbd_frontend_responses_total"], "counter")
        self.assertEqual(m0.types["lbd_backend_response_seconds"],
                         "histogram")
        self.assertEqual(m0.types["lbd_server_up"], "gauge")

        # 4 answers of 2xx, 2 of 4xx, one slow, one of 1000 bytes
        paths = ["/hello"] * 3 + ["/nope"] * 2 + ["/source/1000",
                                                  "/slow/300"]
        with Conn(self.port) as c:
            rs = [c.request("GET", p) for p in paths]
            mid = self.metrics()
            # the kept-alive connection is a session, while it is open
            self.assertEqual(mid("lbd_frontend_current_sessions",
                                 frontend="www"), 1)
        self.assertEqual([r.status for r in rs], [200] * 3 + [404] * 2 +
                         [200] * 2)
        served = [r.header("Server") for r in rs]
        body_bytes = sum(len(r.body) for r in rs)
        wait_for(lambda: self.metrics()("lbd_frontend_current_sessions",
                                        frontend="www") == 0, 3,
                 what="the session to end")
        m = self.metrics()
        fe = {c: m("lbd_frontend_responses_total", frontend="www", code=c)
              for c in ("1xx", "2xx", "3xx", "4xx", "5xx")}
        self.assertEqual(fe, {"1xx": 0, "2xx": 5, "3xx": 0, "4xx": 2,
                              "5xx": 0})
        self.assertEqual(m("lbd_frontend_responses_total", frontend="other",
                           code="2xx"), 0)
        self.assertEqual(m("lbd_frontend_bytes_out_total", frontend="www"),
                         body_bytes)
        self.assertEqual(m("lbd_frontend_connections_total", frontend="www") -
                         m0("lbd_frontend_connections_total",
                            frontend="www"), 1)
        for s in ("s1", "s2"):
            self.assertEqual(m("lbd_server_requests_total", backend="webs",
                               server=s), served.count(s), s)
            # every answer of the server counted, fast ones too
            self.assertEqual(sum(m("lbd_server_responses_total",
                                   backend="webs", server=s, code=c)
                                 for c in ("2xx", "4xx")),
                             served.count(s), s)
            self.assertEqual(m("lbd_server_bytes_out_total", backend="webs",
                               server=s),
                             sum(len(r.body) for r in rs
                                 if r.header("Server") == s))
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="gone"), 0)
        self.assertEqual(m("lbd_server_responses_total", backend="webs",
                           server="s1", code="4xx") +
                         m("lbd_server_responses_total", backend="webs",
                           server="s2", code="4xx"), 2)
        # histograms: every request observed once, the slow one in its
        # bucket (0.25 s < 0.3 s <= 0.5 s)
        for h in ("lbd_backend_total_time_seconds",
                  "lbd_backend_response_seconds",
                  "lbd_backend_connect_seconds",
                  "lbd_backend_queue_seconds"):
            self.assertEqual(m(h + "_count", backend="webs"), 7, h)
        b = dict(m.buckets("lbd_backend_response_seconds", backend="webs"))
        self.assertEqual(b[float("inf")], 7)
        self.assertEqual(b[0.5] - b[0.25], 1, b)
        self.assertEqual(b[0.25], 6, b)
        self.assertGreaterEqual(m("lbd_backend_response_seconds_sum",
                                  backend="webs"), 0.3)
        self.assertLess(m("lbd_backend_response_seconds_sum",
                          backend="webs"), 0.3 + 0.5 * SLOW)
        # the check's failures
        self.assertGreaterEqual(m("lbd_server_check_failures_total",
                                  backend="webs", server="gone"), 1)
        self.assertEqual(m("lbd_server_check_up_down_total",
                           backend="webs", server="gone"), 1)

    def test_thousands_of_servers(self):
        """3840 servers start in well under a second, each with its
        series: finding a series is a lookup in the statistics index
        (it was a walk of every series of the family: 5.7 s here)."""
        s1, = self.backends("s1")
        dead = dead_addr()
        big = "".join(f"backend b{b} {{\n" + "".join(
            f"    server s{b}_{i} {dead}\n" for i in range(64)) + "}\n"
            for b in range(60))
        t0 = time.monotonic()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server s1 {s1.addr}
}}
""" + big)
        took = time.monotonic() - t0
        self.assertEqual(self.who(), "s1")
        self.assertLess(took, 2.0 * SLOW)
        m = self.metrics()
        ups = [k for k in m.samples if k[0] == "lbd_server_up"]
        self.assertEqual(len(ups), 3841)

    def test_metrics_label_escaping_and_exposition(self):
        # the parser above is strict: prove it fails on what it should
        class R:
            status = 200
            head = b""

            def __init__(self, body):
                self.body = body

            def header(self, name):
                return "text/plain; version=0.0.4"
        ok = (b'# HELP a_total x\n# TYPE a_total counter\n'
              b'a_total{l="q\\"\\\\\\n"} 1\n')
        self.assertEqual(Metrics(R(ok))("a_total", l='q"\\\n'), 1)
        bad = [b'# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\n'
               b'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
               b'# HELP a x\n# TYPE a counter\na 1\n# HELP b x\n'
               b'# TYPE b counter\nb 1\na 2\n',
               b'a 1\n']
        for body in bad:
            with self.assertRaises(AssertionError, msg=body):
                Metrics(R(body))

    def test_httplog_fields(self):
        self.setup_site()
        now = datetime.datetime.now()
        with Conn(self.port) as c:
            # the head in two parts: Tq is the time between them
            c.send(b"GET /slow/300 HTTP/1.1\r\nHost: t\r\n")
            time.sleep(0.4)
            c.send(b"\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            srv = r.header("Server")
            # quotes and backslashes in the target are escaped
            r2 = c.request("GET", '/a"b\\c?x="y"')
            self.assertEqual(r2.status, 404)
            port = c.local_port
        first, second = self.wait_logs(2)
        self.assertEqual(first["client"], "127.0.0.1")
        self.assertEqual(first["port"], port)
        t = datetime.datetime.strptime(first["date"], "%d/%b/%Y:%H:%M:%S.%f")
        self.assertLess(abs((t - now).total_seconds()), 5)
        self.assertEqual((first["frontend"], first["tls"], first["backend"],
                          first["server"]), ("www", "", "webs", srv))
        # lbd's clock starts when it reads the first part, which may be
        # a little after the client sent it
        self.assertGreaterEqual(first["tq"], 300)
        self.assertLess(first["tq"], 400 + 300 * SLOW)
        self.assertGreaterEqual(first["tw"], 0)
        self.assertGreaterEqual(first["tc"], 0)
        self.assertGreaterEqual(first["tr"], 300)
        self.assertGreaterEqual(first["ta"], first["tr"])
        self.assertLess(first["ta"], 300 + 300 * SLOW)
        self.assertEqual((first["status"], first["bytes"], first["term"],
                          first["retries"]), (200, 5, "----", 0))
        self.assertEqual(first["request"], "GET /slow/300 HTTP/1.1")
        # a fast answer has its timers too, not -1 for "did not happen"
        self.assertEqual(second["port"], port)
        self.assertGreaterEqual(second["tc"], 0, second["syslog"])
        self.assertGreaterEqual(second["tr"], 0, second["syslog"])
        self.assertEqual((second["status"], second["bytes"]), (404, 14))
        self.assertEqual(second["request"],
                         r"GET /a\x22b\x5cc?x=\x22y\x22 HTTP/1.1")
        # syslog facility local0 by default, severity info
        self.assertRegex(first["syslog"], r" local0\.info lbd\[\d+\]: ")

    def test_httplog_connection_counts_retries_and_terms(self):
        self.setup_site()
        # feconn: the sessions of the frontend; srvconn: the server's
        held = Conn(self.port)
        self.addCleanup(held.close)
        self.assertEqual(held.request("GET", "/hello").status, 200)
        t = threading.Thread(target=lambda: get(self.port, "/slow/400"))
        t.start()
        # the slow one in lbd: two sessions of the frontend
        wait_for(lambda: self.metrics()("lbd_frontend_current_sessions",
                                        frontend="www") == 2, 3,
                 what="the slow request in lbd")
        with Conn(self.port) as c:
            self.assertEqual(c.request("GET", "/hello").status, 200)
        t.join(5 * SLOW)
        lines = self.wait_logs(3)
        third = [ln for ln in lines if ln["request"] == "GET /hello HTTP/1.1"
                 and ln is not lines[0]][0]
        # held + the slow one + this one: 3 sessions; the slow one's
        # server connection in the backend's count (a request's own
        # connection is given back before its line is written)
        self.assertEqual(third["feconn"], 3, third["syslog"])
        self.assertGreaterEqual(third["beconn"], 1, third["syslog"])
        self.assertGreaterEqual(third["srvconn"], 0)
        held.close()

        # a client that leaves (a reset) while the server thinks: CH,
        # as HAProxy writes it (c is for a client's timeout)
        self.syslog.mark()
        c = Conn(self.port)
        c.send(request_bytes("GET", "/slow/1000"))
        time.sleep(0.2)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        ln, = self.wait_logs(1)
        self.assertEqual((ln["term"][:2], ln["status"], ln["tr"]),
                         ("CH", -1, -1), ln["syslog"])
        self.assertLess(ln["ta"], 900)

        # a bad request: logged in the same format, its line escaped,
        # counted as a 4xx
        self.syslog.mark()
        before = self.metrics(settle=True)("lbd_frontend_responses_total",
                                frontend="www", code="4xx")
        out = raw_closed(self.port, b"GET /caf\xc3\xa9 HTTP/1.1\r\n"
                         b"Host: t\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        ln, = self.wait_logs(1)
        self.assertEqual((ln["frontend"], ln["backend"], ln["server"],
                          ln["status"], ln["term"][:2]),
                         ("www", "www", "<NOSRV>", 400, "LR"))
        self.assertEqual(ln["request"], r"GET /caf\xc3\xa9 HTTP/1.1")
        wait_for(lambda: self.metrics()("lbd_frontend_responses_total",
                                        frontend="www", code="4xx") ==
                 before + 1, 3, what="the 400 counted")

    def test_httplog_retry_to_another_server(self):
        s1, = self.backends("s1")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server dead {dead_addr()}
    server s1 {s1.addr}
    retries 2
}}
""", workers=1)
        # the rotation starts at "dead": refused, retried on s1
        r = self.get()
        self.assertEqual((r.status, r.header("Server")), (200, "s1"))
        ln, = self.wait_logs(1)
        self.assertEqual((ln["server"], ln["retries"], ln["term"]),
                         ("s1", 1, "----"))
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_backend_retries_total", backend="webs"), 1)
        self.assertEqual(m("lbd_server_connection_errors_total",
                           backend="webs", server="dead"), 1)

    def test_httplog_server_failures(self):
        """What the line says when servers fail: the status the client
        got, and the termination state of the failure."""
        def short(s, head):
            # the head and 3 of the 100 bytes it promises, then gone
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                      b"\r\nabc")
        port = scripted_server(self, short)
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route path /short backend short
    backend dead
}}
backend short {{
    server cut 127.0.0.1:{port}
    retries 0
}}
backend dead {{
    server d1 {dead_addr()}
    server d2 {dead_addr()}
    retries 1
}}
""", workers=1)
        # cut mid-body: the client has its 200 and a short body; so does
        # the log, with sD, and the metrics count a 2xx
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/short"))
            head = c.read_head()
            self.assertEqual(head.status, 200)
            self.assertTrue(c.closed_within(5 * SLOW))
        ln, = self.wait_logs(1)
        self.assertEqual((ln["status"], ln["bytes"], ln["term"][:2]),
                         (200, 3, "sD"), ln["syslog"])
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_frontend_responses_total", frontend="www",
                           code="5xx"), 0)
        # no server answers, after a retry: 502, and the connect failure
        self.syslog.mark()
        self.assertEqual(self.get("/x").status, 502)
        ln, = self.wait_logs(1)
        self.assertEqual((ln["status"], ln["retries"], ln["term"][:2]),
                         (502, 1, "sC"), ln["syslog"])

    def test_stats_page_and_healthz(self):
        self.setup_site(top="")
        self.get()
        self.metrics(settle=True)
        r = get(self.stats, "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        p = StatsPage(r.body.decode())
        self.assertEqual(p.refresh, 5)
        # the frontends' table: a row for each
        heading, rows = p.tables[0]
        self.assertEqual(rows[0][:3], ["frontend", "sessions", "1xx"])
        fes = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
        self.assertEqual(set(fes), {"www", "other"})
        self.assertEqual(fes["www"]["2xx"], "1")
        self.assertEqual(fes["other"]["2xx"], "0")
        # a table per backend, a row per server, its state
        be = {h: rows for h, rows in p.tables[1:]}
        self.assertEqual(set(be), {"backend webs (roundrobin, 2 up, 0 waiting)",
                                   "backend spare (roundrobin, 1 up, 0 waiting)"})
        webs = be["backend webs (roundrobin, 2 up, 0 waiting)"]
        hdr = webs[0]
        srv = {row[0]: dict(zip(hdr, row)) for row in webs[1:]}
        self.assertEqual(set(srv), {"s1", "s2", "gone"})
        self.assertEqual(srv["gone"]["state"], "DOWN")
        self.assertEqual(srv["gone"]["result"], "connection refused")
        self.assertEqual(srv["s1"]["state"], "UP")
        self.assertEqual(srv["s1"]["address"], self.s1.addr)
        self.assertEqual(srv["s1"]["result"], "HTTP 200")
        self.assertEqual(int(srv["s1"]["requests"]) +
                         int(srv["s2"]["requests"]), 1)
        self.assertIn("DOWN", p.classes)

        r = get(self.stats, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        # an absolute-form target is taken too (RFC 9112 3.2.2)
        for target, body in ((f"http://127.0.0.1:{self.stats}/healthz",
                              b"ok\n"),
                             (f"http://127.0.0.1:{self.stats}/healthz?x",
                              b"ok\n"),
                             (f"http://127.0.0.1:{self.stats}",
                              None)):
            with Conn(self.stats) as c:
                c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"
                       .encode())
                r = c.read_response()
            self.assertEqual(r.status, 200, target)
            if body:
                self.assertEqual(r.body, body)
            else:
                self.assertIn(b"<table", r.body)
        self.assertEqual(get(self.stats, "/nope").status, 404)
        r = get(self.stats, "/metrics", method="POST", body="")
        self.assertEqual((r.status, r.header("Allow")), (405, "GET, HEAD"))

    def test_healthz_servers(self):
        """healthz servers: 503, naming the backend, while a backend has
        no server up (for keepalived to move the floating address to a
        balancer that may reach them), 200 again once one is back."""
        s1, = self.backends("s1")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server s1 {s1.addr}
    check tcp interval 200ms timeout 100ms rise 1 fall 1
}}
""", stats_opts=" {\n    healthz servers\n}")
        wait_for(lambda: get(self.stats, "/healthz").status == 200, 5,
                 what="healthz 200")
        self.assertEqual(get(self.stats, "/healthz").body, b"ok\n")
        kill_now(s1)
        wait_for(lambda: get(self.stats, "/healthz").status == 503, 5,
                 what="healthz 503")
        r = get(self.stats, "/healthz")
        self.assertEqual(r.body, b"backend webs has no server available\n")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        s1.start()
        wait_for(lambda: get(self.stats, "/healthz").status == 200, 5,
                 what="healthz 200 again")

    def test_stats_listener_basic_auth(self):
        """stats ... { auth-basic REALM FILE }: HAProxy's stats auth, for
        the page and /metrics (Prometheus sends basic_auth); /healthz
        stays open for keepalived's check."""
        s1, = self.backends("s1")
        users = os.path.join(self.dir, "stats-users")
        with open(users, "w") as f:
            f.write(f"ops:{BCRYPT_PW}\n")
        os.chmod(users, 0o600)
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server s1 {s1.addr}
}}
""", stats_opts=f' {{\n    auth-basic "lbd stats" "{users}"\n}}')

        def auth(pw):
            return [basic_auth("ops", pw)]
        for path in ("/", "/stats", "/metrics"):
            r = get(self.stats, path)
            self.assertEqual((r.status, r.header("WWW-Authenticate")),
                             (401, 'Basic realm="lbd stats", '
                              'charset="UTF-8"'), path)
            self.assertNotIn(b"webs", r.body)
            self.assertEqual(get(self.stats, path, auth("nope")).status,
                             401, path)
            self.assertEqual(get(self.stats, path, auth("pw")).status, 200,
                             path)
        self.assertIn(b"lbd_server_up", get(self.stats, "/metrics",
                                            auth("pw")).body)
        self.assertEqual(get(self.stats, "/healthz").status, 200)
        # a file lbd cannot use: refused with its line
        with open(users, "a") as f:
            f.write("old:$apr1$abcdefgh$5VEbMkemELfbhC5ck.U.z1\n")
        rc, out = self.lb.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"{users}:2: user old: Apache's own MD5", out)

    def test_stats_listener_allow_list_and_refresh(self):
        s1, = self.backends("s1")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server s1 {s1.addr}
}}
""", stats_opts=" {\n    allow 127.0.0.1\n    refresh 7s\n}")
        p = StatsPage(get(self.stats, "/").body.decode())
        self.assertEqual(p.refresh, 7)
        self.assertEqual(get(self.stats, "/healthz").status, 200)
        # another source: closed before a byte is read
        self.assertEqual(raw_closed(self.stats, b"GET /healthz HTTP/1.1\r\n"
                                    b"Host: t\r\n\r\n",
                                    source="127.0.0.2"), b"")
