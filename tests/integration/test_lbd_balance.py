"""lbd's balancing through the real daemon (two workers unless said):
round-robin rotating exactly across workers, 5:1 weights interleaved,
leastconn, source and URI hashing, static-rr, random, backup servers,
the quick 503 when every server is down, and a server's maxconn with
its queue and queue-timeout (the count shared by the workers).  Each
testhttpd backend names itself in the Server field."""
import threading
import time
import unittest

from harness import SLOW, free_port, wait_for
from httpc import Conn, only_worker, socket_owner
from lbdtest import CHECK, LbdTest, dead_addr, get, kill_now


class BalanceTest(LbdTest):
    def pinned(self, port):
        """One keep-alive connection to each lbd worker, in worker
        order."""
        ws = self.lb.wait_workers(2)
        conns = []
        for w in ws:
            with only_worker(ws, w):
                c = Conn(port)
                wait_for(lambda: socket_owner(c.local_port, port), 5,
                         what="the connection to be accepted")
            self.assertEqual(socket_owner(c.local_port, port), w)
            self.addCleanup(c.close)
            conns.append(c)
        return conns

    def test_roundrobin_rotates_exactly_across_workers(self):
        bs = self.backends("s1", "s2", "s3")
        self.simple(bs)
        # requests 1..6, each on a new connection, whichever worker
        # takes it
        self.assertEqual([self.who() for _ in range(6)],
                         ["s1", "s2", "s3"] * 2)
        # and on kept-alive connections, the two workers taking turns:
        # one rotation, not one per worker
        a, b = self.pinned(self.port)
        got = [(a, b)[i % 2].request("GET", "/hello").header("Server")
               for i in range(12)]
        self.assertEqual(got, ["s1", "s2", "s3"] * 4)
        a.close()
        b.close()
        m = self.metrics(settle=True)
        for s in ("s1", "s2", "s3"):
            self.assertEqual(m("lbd_server_requests_total", backend="webs",
                               server=s), 6)

    def test_weights_5_to_1_interleave(self):
        heavy, light = self.backends("heavy", "light")
        self.simple([heavy, light], opts={"heavy": "weight 5"})
        got = [self.who() for _ in range(12)]
        # nginx's smooth scheme: the light server in the middle of each
        # round of six, never five heavies then a light
        self.assertEqual(got, (["heavy"] * 3 + ["light"] +
                               ["heavy"] * 2) * 2)

    def test_leastconn_prefers_the_idle_server(self):
        bs = self.backends("x1", "x2")
        self.simple(bs, backend="    balance leastconn")
        self.assertEqual({self.who() for _ in range(4)}, {"x1", "x2"})
        held = []
        t = threading.Thread(target=lambda: held.append(
            self.who("/slow/1500", timeout=10)))
        t.start()
        # the slow request is on a server, for all workers to see
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                        backend="webs", server="x1") +
                 self.metrics()("lbd_server_current_sessions",
                                backend="webs", server="x2") == 1, 3,
                 what="the slow request on a server")
        got = [self.who() for _ in range(8)]
        t.join(10 * SLOW)
        self.assertEqual(len(held), 1)
        idle = {"x1": "x2", "x2": "x1"}[held[0]]
        self.assertEqual(got, [idle] * 8, f"slow request on {held[0]}")

    def test_source_hash_is_stable(self):
        bs = self.backends("h1", "h2", "h3")
        self.simple(bs, backend="    balance source")
        seen = {}
        for i in range(1, 9):
            src = f"127.0.0.{i}"
            names = {self.who(source=src) for _ in range(4)}
            self.assertEqual(len(names), 1, f"{src} moved: {names}")
            seen[src] = names.pop()
        self.assertGreaterEqual(len(set(seen.values())), 2, seen)
        # a server going away moves only its own clients
        self.ctl("set", "server", f"webs/{seen['127.0.0.1']}", "state",
                 "maint")
        gone = seen["127.0.0.1"]
        for src, name in seen.items():
            now = self.who(source=src)
            if name != gone:
                self.assertEqual(now, name, f"{src} moved")
            else:
                self.assertNotEqual(now, gone)

    def test_hash_on_a_header_or_a_query_parameter(self):
        """balance hdr NAME and balance url-param NAME (HAProxy's
        hdr(NAME) and url_param): a value keeps its server; requests
        without one spread over the servers."""
        bs = self.backends("h1", "h2", "h3")
        lines = self.server_lines(bs)
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route path /p/ backend params
    backend hdrs
}}
backend hdrs {{
    balance hdr X-User
{lines}
}}
backend params {{
    balance url-param user
{lines}
}}
""")

        def srv(path, **kw):
            return get(self.port, path, **kw).header("Server")
        by_hdr, by_param = {}, {}
        for i in range(12):
            u = f"user{i}"
            got = {srv("/x", headers=[("x-user", u)]) for _ in range(3)}
            self.assertEqual(len(got), 1, (u, got))
            by_hdr[u] = got.pop()
            got = {srv(f"/p/x?a=1&user={u}&b=2") for _ in range(3)} | \
                {srv(f"/p/y?user={u}")}
            self.assertEqual(len(got), 1, (u, got))
            by_param[u] = got.pop()
        self.assertGreaterEqual(len(set(by_hdr.values())), 2, by_hdr)
        self.assertGreaterEqual(len(set(by_param.values())), 2, by_param)
        # none, or empty: in turn, more or less
        self.assertGreaterEqual(len({srv("/x") for _ in range(12)}), 2)
        self.assertGreaterEqual(len({srv("/x", headers=[("X-User", "")])
                                     for _ in range(12)}), 2)
        self.assertGreaterEqual(len({srv("/p/x?user=&a=1")
                                     for _ in range(12)}), 2)
        self.assertGreaterEqual(
            len({srv("/p/x?xuser=1&userx=2") for _ in range(12)}), 2)
        for bal, mode, msg in (
                ("hdr", "http", "balance hdr needs a name"),
                ("roundrobin x", "http", "balance roundrobin takes no name"),
                ("hdr Connection", "http", 'balance hdr "Connection": a '
                 "field the server writes itself"),
                ("url-param a=b", "http", 'balance url-param: "a=b" is not'),
                ('url-param ""', "http", 'balance url-param: "" is not'),
                ("hdr X-User", "tcp", "balance hdr needs mode http")):
            self.refused(f"""
frontend www {{
    mode {mode}
    listen 127.0.0.1:{free_port()}
    backend b
}}
backend b {{
    mode {mode}
    balance {bal}
    server h1 {bs[0].addr}
}}
""", f"balance {bal}", msg)

    def test_static_rr_uri_and_random(self):
        u1, u2, u3 = self.backends("u1", "u2", "u3")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route path /static/ backend static
    route path /uri/ backend uri
    backend rand
}}
backend static {{
    balance static-rr
    server u1 {u1.addr} weight 3
    server u2 {u2.addr}
}}
backend uri {{
    balance uri
{self.server_lines([u1, u2, u3])}
}}
backend rand {{
    balance random
{self.server_lines([u1, u2])}
}}
""")
        # static-rr: a shared counter over the weights, across workers
        # (the backends answer 404 for these paths, naming themselves)
        self.assertEqual([self.get("/static/x").header("Server")
                          for _ in range(8)],
                         ["u1", "u1", "u1", "u2"] * 2)
        # uri: the path picks the server, the query does not count
        paths = {}
        for i in range(12):
            names = {self.get(f"/uri/{i}?n={j}").header("Server")
                     for j in range(3)}
            self.assertEqual(len(names), 1, f"/uri/{i} moved: {names}")
            paths[i] = names.pop()
        self.assertGreaterEqual(len(set(paths.values())), 2, paths)
        # random: everyone gets some; with one server busy, two random
        # choices prefer the other one
        got = [self.who() for _ in range(30)]
        self.assertEqual(set(got), {"u1", "u2"})
        held = []
        t = threading.Thread(target=lambda: held.append(
            self.who("/slow/4000", timeout=15)))
        t.start()
        wait_for(lambda: sum(self.metrics()("lbd_server_current_sessions",
                                            backend="rand", server=s)
                             for s in ("u1", "u2")) == 1, 3,
                 what="the slow request on a server")
        with Conn(self.port) as c:
            got = [c.request("GET", "/hello").header("Server")
                   for _ in range(200)]
        t.join(15 * SLOW)
        busy = held[0]
        # the busy one only when both draws fall on it: 1/4 of the time
        # (50, sd 6), where one random draw would give it half (100)
        self.assertLess(got.count(busy), 80, got)

    def test_backup_only_when_all_others_are_down(self):
        m1, m2, bk = self.backends("m1", "m2", "bk")
        self.simple([m1, m2, bk], opts={"bk": "backup"},
                    backend="    " + CHECK)
        self.assertEqual(set(self.who() for _ in range(8)), {"m1", "m2"})
        kill_now(m1)
        self.wait_state("webs/m1", "DOWN")
        # one normal server left: it takes everything, the backup nothing
        self.assertEqual([self.who() for _ in range(6)], ["m2"] * 6)
        kill_now(m2)
        # refused, or reset when the kill caught a check in flight
        self.syslog.wait(r"server webs/m2 is DOWN: (connection refused|"
                         r"read: connection reset by peer), "
                         r"0 active and 1 backup left")
        self.assertEqual([self.who() for _ in range(6)], ["bk"] * 6)
        # a normal server back: the backup is out of the rotation again
        m1.start()
        self.wait_state("webs/m1", "UP")
        self.assertEqual([self.who() for _ in range(6)], ["m1"] * 6)

    def test_all_down_is_a_quick_503(self):
        d1, d2 = dead_addr(), dead_addr()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server d1 {d1}
    server d2 {d2}
    connect-timeout 3s
    {CHECK}
}}
""")
        self.wait_state("webs/d1", "DOWN")
        self.wait_state("webs/d2", "DOWN")
        self.syslog.wait(r"backend webs has no server available")
        for _ in range(3):
            t0 = time.monotonic()
            r = self.get()
            took = time.monotonic() - t0
            self.assertEqual(r.status, 503)
            # no connect tried, no timeout (3 s) waited for; the log
            # lines below show no connect was tried
            self.assertLess(took, 1.0 * SLOW, f"503 after {took:.3f}s")
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_backend_unavailable_total", backend="webs"),
                         3)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="d1"), 0)
        lines = self.wait_logs(3)
        for ln in lines:
            self.assertEqual((ln["backend"], ln["server"], ln["status"],
                              ln["tw"], ln["tc"], ln["term"][:2]),
                             ("webs", "<NOSRV>", 503, -1, -1, "sC"))

    def test_maxconn_queue_and_queue_timeout(self):
        b1, = self.backends("b1")
        self.simple([b1], opts={"b1": "maxconn 1"},
                    backend="    queue-timeout 1200ms")
        self.assertEqual([self.get().status for _ in range(4)], [200] * 4)
        ws = self.lb.wait_workers(2)
        res = {}

        def call(key, path, worker):
            # each request through a given worker: the slot is counted
            # across workers, not per worker
            with only_worker(ws, worker):
                c = Conn(self.port, timeout=10)
                wait_for(lambda: socket_owner(c.local_port, self.port), 5,
                         what="the connection to be accepted")
            with c:
                t0 = time.monotonic()
                r = c.request("GET", path, [("Connection", "close")])
                res[key] = (r.status, time.monotonic() - t0)

        t = threading.Thread(target=call, args=("slow", "/slow/1000",
                                                ws[0]))
        t.start()
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                        backend="webs", server="b1") == 1,
                 3, what="the slot taken")
        call("queued", "/hello", ws[1])
        t.join(10 * SLOW)
        self.assertEqual(res["slow"][0], 200)
        self.assertEqual(res["queued"][0], 200)
        self.assertGreater(res["queued"][1], 0.3)
        # past queue-timeout: 503, after the timeout and not much later
        t = threading.Thread(target=call, args=("slow", "/slow/2500",
                                                ws[1]))
        t.start()
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                        backend="webs", server="b1") == 1,
                 3, what="the slot taken")
        call("late", "/hello", ws[0])
        t.join(10 * SLOW)
        self.assertEqual(res["slow"][0], 200)
        self.assertEqual(res["late"][0], 503)
        self.assertGreater(res["late"][1], 1.1)
        self.assertLess(res["late"][1], 1.8 * SLOW)
        # the log: the queued request waited (Tw), the late one timed out
        # in the queue (sQ)
        logs = self.wait_logs(8)
        waited = [ln for ln in logs if ln["status"] == 200 and
                  ln["tw"] >= 300]
        self.assertEqual(len(waited), 1, logs)
        late = [ln for ln in logs if ln["status"] == 503]
        self.assertEqual(len(late), 1, logs)
        self.assertEqual((late[0]["server"], late[0]["term"][:2]),
                         ("<NOSRV>", "sQ"))
        self.assertGreaterEqual(late[0]["ta"], 1150)
        h = self.metrics(settle=True).buckets("lbd_backend_queue_seconds",
                                   backend="webs")
        below = dict(h)
        # the queued request, somewhere between 0.25 and 1 s
        self.assertGreaterEqual(below[1.0] - below[0.25], 1, h)

    def test_queue_first_come_first_served_and_its_gauge(self):
        """Requests waiting for a slot are served in their order of
        arrival (they used to race at their 10 ms retries, and a later
        one could take the slot first), and /metrics counts them."""
        b1, = self.backends("b1")
        self.simple([b1], opts={"b1": "maxconn 1"},
                    backend="    queue-timeout 5s", workers=1)
        done, lock = [], threading.Lock()

        def call(key, path):
            r = get(self.port, path, timeout=10)
            with lock:
                done.append((key, r.status))
        # (the slot held long enough for five to queue, one by one, on a
        # slow machine)
        first = threading.Thread(target=call,
                                 args=("first", f"/slow/{1000 * SLOW}"))
        first.start()
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                        backend="webs", server="b1") == 1,
                 3, what="the slot taken")
        waiting = []
        for i in range(5):
            t = threading.Thread(target=call, args=(i, "/slow/50"))
            t.start()
            waiting.append(t)
            wait_for(lambda: self.metrics()("lbd_backend_current_queue",
                                            backend="webs") == i + 1,
                     3, what=f"{i + 1} waiting")
        page = get(self.stats, "/").body.decode()
        self.assertIn("backend webs (roundrobin, 1 up, 5 waiting)", page)
        for t in [first] + waiting:
            t.join(15)
        self.assertEqual(done, [("first", 200)] + [(i, 200)
                                                    for i in range(5)])
        self.assertEqual(self.metrics()("lbd_backend_current_queue",
                                        backend="webs"), 0)

    def test_max_queue(self):
        """max-queue 2: with the slot taken and two requests waiting (in
        either worker), the next is answered 503 at once, logged sQ."""
        b1, = self.backends("b1")
        self.simple([b1], opts={"b1": "maxconn 1"},
                    backend="    queue-timeout 5s\n    max-queue 2")
        res, lock = [], threading.Lock()

        def call(path):
            r = get(self.port, path, timeout=10)
            with lock:
                res.append(r.status)
        ts = [threading.Thread(target=call,
                               args=(f"/slow/{1000 * SLOW}",))]
        ts[0].start()
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                        backend="webs", server="b1") == 1,
                 3, what="the slot taken")
        for i in range(2):
            ts.append(threading.Thread(target=call, args=("/hello",)))
            ts[-1].start()
            wait_for(lambda: self.metrics()("lbd_backend_current_queue",
                                            backend="webs") == i + 1,
                     3, what=f"{i + 1} waiting")
        self.syslog.mark()
        t0 = time.monotonic()
        r = get(self.port, "/hello", timeout=10)
        self.assertEqual(r.status, 503)
        self.assertLess(time.monotonic() - t0, 0.5 * SLOW)
        ln, = self.wait_logs(1, pred=lambda x: x["status"] == 503)
        self.assertEqual((ln["server"], ln["term"][:2]), ("<NOSRV>", "sQ"))
        for t in ts:
            t.join(15)
        self.assertEqual(sorted(res), [200, 200, 200])

    # A server of weight 0 in the conf takes no new requests, as in
    # HAProxy and as lbdctl's weight 0 (up_server_add() once made it 1).
    def test_weight_0_in_the_conf_takes_no_requests(self):
        a, b = self.backends("a", "b")
        self.simple([a, b], opts={"b": "weight 0"}, workers=1)
        self.assertEqual({self.who() for _ in range(6)}, {"a"})
