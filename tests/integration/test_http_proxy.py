"""The proxy core (common/proxy.c, upstream.c, lb_*.c, tunnel.c) through
a testhttpd proxy in front of testhttpd backends: the request head as the
server gets it, retries and passive health, timeouts, keep-alive to the
servers, bodies and tunnels, the balancing algorithms, backups and
connection limits.  Each backend has its own server-name, which comes
back in the Server field of the response."""
import hashlib
import os
import re
import signal
import socket
import threading
import time

from harness import free_port, wait_for, wait_port, SLOW
from httpc import (Closed, Conn, HttpTest, RssWatch, chunked, get, only_worker,
                   request_bytes, scripted_server, socket_owner, source_bytes,
                   tcp_conns)

BACKEND = """
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
server-name "{name}"
max-body-size 0
"""

PROXY = """
workers {workers}
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
max-body-size 0
{extra}
upstream {{
{upstream}
}}
"""

MB = 1024 * 1024


class FakeServer:
    """A scripted upstream: for each connection, read a request head and
    send <answer> (bytes, or a function of the head returning bytes),
    then close unless <keep>."""

    def __init__(self, answer, keep=False):
        self.answer = answer
        self.keep = keep
        self.heads = []
        self.accepted = 0
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(s,),
                             daemon=True).start()

    def serve(self, s):
        with s:
            s.settimeout(10)
            buf = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        d = s.recv(65536)
                        if not d:
                            return
                        buf += d
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    self.heads.append(head)
                    a = self.answer(head) if callable(self.answer) \
                        else self.answer
                    s.sendall(a)
                    if not self.keep:
                        return
            except OSError:
                return

    def close(self):
        # wake the thread blocked in accept() before the descriptor goes:
        # else it may wake later on a new socket given the same number
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.t.join(5)
        self.ls.close()


class ProxyTest(HttpTest):
    def backend(self, name):
        port = free_port()
        d = self.daemon("testhttpd", BACKEND.format(port=port, name=name),
                        name=name)
        d.start()
        d.port = port
        d.addr = f"127.0.0.1:{port}"
        wait_port("127.0.0.1", port)
        return d

    def backends(self, *names):
        return [self.backend(n) for n in names]

    def proxy(self, upstream, workers=2, extra="", name="proxy"):
        self.port = free_port()
        d = self.daemon("testhttpd", PROXY.format(
            workers=workers, port=self.port, extra=extra,
            upstream=upstream), name=name)
        d.start()
        d.wait_workers(workers)
        wait_port("127.0.0.1", self.port)
        return d

    def servers(self, *bs, opts=None):
        opts = opts or {}
        return "\n".join(f"server {b.name} {b.addr} {opts.get(b.name, '')}"
                         for b in bs)

    def get(self, path="/hello", **kw):
        return get(self.port, path, **kw)

    def who(self, **kw):
        r = self.get(**kw)
        self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(r.header("Server"), r.head)
        return r.header("Server")

    def sent_head(self, r):
        """The request head the backend received (its /head answer)."""
        lines = r.body.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            if ln:
                n, v = ln.split(":", 1)
                hdrs.setdefault(n.lower(), []).append(v.strip())
        return lines[0], hdrs

    def test_broken_upstream_conf_refused(self):
        p = self.daemon("testhttpd", PROXY.format(
            workers=1, port=free_port(), extra="", upstream=(
                "server a 127.0.0.1:1 weight 300\n"
                "server b 127.0.0.1:99999\n"
                "balance fastest")), name="broken")
        rc, out = p.run("-n")
        self.assertEqual(rc, 1, out)
        for line, msg in ((8, "invalid weight 300"), (9, "invalid port"),
                          (10, "invalid balance \"fastest\"")):
            self.assertRegex(out, rf"{re.escape(p.conf_path)}:{line}: "
                             rf".*{msg}")
        self.assertIn(": 3 errors", out)
        # right words, but the load fails (and frees what it built: the
        # sanitizer build checks for leaks at exit)
        p.write_conf(PROXY.format(
            workers=1, port=free_port(), extra="", upstream=(
                "server a 127.0.0.1:1\ntls yes\n"
                f'tls-ca "{self.dir}/missing.pem"')))
        rc, out = p.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r":9: CA file .*missing.pem")
        self.assertNotIn("configuration OK", out)

    # the request as it goes upstream

    def test_hop_by_hop_fields_removed(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons), extra="")
        with Conn(self.port) as c:
            r = c.request("GET", "/head", [
                ("Connection", "keep-alive, X-Secret, x-other"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Trailer", "X-T"),
                ("Proxy-Connection", "keep-alive"),
                ("Upgrade", "websocket"),
                ("X-Secret", "hidden"),
                ("X-Other", "hidden too"),
                ("X-Keep", "yes"),
                ("X-Forwarded-For", "10.1.2.3"),
            ])
            self.assertEqual(r.status, 200)
            line, h = self.sent_head(r)
            self.assertEqual(line, "GET /head HTTP/1.1")
            for f in ("connection", "keep-alive", "te", "trailer",
                      "proxy-connection", "upgrade", "x-secret",
                      "x-other"):
                self.assertNotIn(f, h, f"{f} went upstream: {r.body!r}")
            self.assertEqual(h["x-keep"], ["yes"])
            self.assertEqual(h["host"], ["test"])
            self.assertEqual(h["x-forwarded-for"], ["10.1.2.3, 127.0.0.1"])
            self.assertEqual(h["x-forwarded-proto"], ["http"])
            self.assertNotIn("via", h)
            # the backend's hop-by-hop answer (/close) ends its own
            # connection, not the client's
            r = c.request("GET", "/close")
            self.assertEqual((r.status, r.body), (200, b"bye\n"))
            self.assertIsNone(r.header("Connection"))
            self.assertEqual(c.request("GET", "/hello").body, b"hello\n")
            # absolute-form: origin-form upstream, and the target's
            # authority as Host, not the client's Host field
            r = c.request("GET", "http://example.test:8080/head",
                          host="elsewhere.test")
            line, h = self.sent_head(r)
            self.assertEqual(line, "GET /head HTTP/1.1")
            self.assertEqual(h["host"], ["example.test:8080"])

    def test_targets_read_one_way(self):
        """An absolute-form target is cut at its authority the same way
        by the parser, the router and the head sent upstream: a "#"
        (never sent by a client) is refused, and a "?" ends the
        authority everywhere, so that the path routed on is the path
        the server gets."""
        f = self.fake(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                      keep=True)
        self.proxy(f"server f {f.addr}")
        with Conn(self.port) as c:
            c.send(b"GET http://x#/secret HTTP/1.1\r\n"
                   b"Host: admin.internal\r\n\r\n")
            self.assertEqual(c.read_response("GET").status, 400)
        self.assertEqual(f.heads, [])
        for target, line, host in (
                ("http://h?/public/x", "GET /?/public/x", "h"),
                ("http://h", "GET /", "h"),
                ("http://h:81/p?q", "GET /p?q", "h:81")):
            with Conn(self.port) as c:
                r = c.request("GET", target, host="other")
                self.assertEqual(r.status, 200, target)
            head = f.heads[-1].decode().split("\r\n")
            self.assertEqual(head[0], line + " HTTP/1.1", target)
            self.assertIn(f"Host: {host}", head, target)

    def test_forwarded_lines_joined_once(self):
        """Several X-Forwarded-For lines go up as one, the peer once at
        its end; Connection cannot take Host or X-Forwarded-Proto away;
        HTTP/1.0 without Host gets one; Upgrade means nothing in
        HTTP/1.0."""
        self.backends("b1")
        self.proxy(self.servers(*self.daemons) + "\nforwarded yes")
        r = self.get("/head", headers=[("X-Forwarded-For", "1.1.1.1"),
                                       ("X-Forwarded-For", "6.6.6.6, 7.7.7.7")])
        h = self.sent_head(r)[1]
        self.assertEqual(h["x-forwarded-for"],
                         ["1.1.1.1, 6.6.6.6, 7.7.7.7, 127.0.0.1"])
        r = self.get("/head", headers=[
            ("Connection", "host, x-forwarded-proto"),
            ("X-Forwarded-Proto", "https")])
        h = self.sent_head(r)[1]
        self.assertEqual(h["host"], ["test"])
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        with Conn(self.port) as c:
            r = c.request("GET", "/head", host=None, version="HTTP/1.0")
            self.assertEqual(r.status, 200)
            line, h = self.sent_head(r)
            self.assertEqual(line, "GET /head HTTP/1.1")
            self.assertEqual(h["host"], ["up"])
        with Conn(self.port) as c:
            r = c.request("GET", "/head", version="HTTP/1.0", headers=[
                ("Connection", "upgrade"), ("Upgrade", "websocket")])
            self.assertEqual(r.status, 200)
            h = self.sent_head(r)[1]
            self.assertNotIn("upgrade", h)

    def test_head_answer_without_framing_says_none(self):
        """A HEAD answer with neither Content-Length nor Transfer-Encoding
        (an HTTP/1.0 server) must not tell the client the body is empty."""
        f = self.fake(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                      b"\r\n")
        self.proxy(f"server f {f.addr}")
        with Conn(self.port) as c:
            r = c.request("HEAD", "/")
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Content-Length"), r.head)
            self.assertIsNone(r.header("Transfer-Encoding"), r.head)

    def test_response_hop_by_hop_fields_removed(self):
        f = self.fake(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Inner"
                      b"\r\nKeep-Alive: timeout=99\r\nX-Inner: secret\r\n"
                      b"Upgrade: h2c\r\nTrailer: X-T\r\nX-Kept: yes\r\n"
                      b"Content-Length: 3\r\n\r\nabc", keep=True)
        self.proxy(f"server f {f.addr}")
        with Conn(self.port) as c:
            r = c.request("GET", "/")
            self.assertEqual((r.status, r.body), (200, b"abc"))
            names = {n.lower() for n, v in r.headers}
            for gone in ("connection", "keep-alive", "x-inner", "upgrade",
                         "trailer"):
                self.assertNotIn(gone, names, r.head)
            self.assertEqual(r.header("X-Kept"), "yes")
            self.assertEqual(r.header("Content-Length"), "3")
            self.assertEqual(len(r.all("Date")), 1)

    def test_forwarded_fields_added(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons) + "\nvia edge\n"
                   "forwarded yes")
        r = self.get("/head", source="127.0.0.5")
        line, h = self.sent_head(r)
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.5"])
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        self.assertEqual(h["via"], ["1.1 edge"])
        self.assertEqual(h["forwarded"], ["for=127.0.0.5;proto=http"])
        # appending to a chain: what an earlier proxy said is kept, once
        r = self.get("/head", headers=[("X-Forwarded-Proto", "https")])
        self.assertEqual(self.sent_head(r)[1]["x-forwarded-proto"],
                         ["https"])
        # HTTP/1.0 from the client: the version in Via, 1.1 upstream
        with Conn(self.port) as c:
            r = c.request("GET", "/head", version="HTTP/1.0")
            line, h = self.sent_head(r)
            self.assertEqual(line, "GET /head HTTP/1.1")
            self.assertEqual(h["via"], ["1.0 edge"])

    def test_forwarded_for_replace_and_off(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons) +
                   "\nx-forwarded-for replace", name="replace")
        r = self.get("/head", headers=[("X-Forwarded-For", "6.6.6.6"),
                                       ("X-Forwarded-Proto", "https"),
                                       ("Forwarded", "for=6.6.6.6")])
        h = self.sent_head(r)[1]
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.1"])
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        self.assertNotIn("forwarded", h)
        self.proxy(self.servers(*self.daemons[:1]) +
                   "\nx-forwarded-for off\nx-forwarded-proto no",
                   name="off")
        r = self.get("/head", headers=[("X-Forwarded-For", "6.6.6.6")])
        h = self.sent_head(r)[1]
        self.assertEqual(h["x-forwarded-for"], ["6.6.6.6"])
        self.assertNotIn("x-forwarded-proto", h)

    # failures

    def test_retry_only_what_can_be_repeated(self):
        # a server that takes the request and closes without a word
        f = self.fake(b"")
        b1, = self.backends("b1")
        self.proxy(f"server f {f.addr}\nserver b1 {b1.addr}\n"
                   "fail-max 0", workers=1)
        # GET: tried on f, then on b1
        self.assertEqual([self.who() for _ in range(4)], ["b1"] * 4)
        self.assertEqual(len(f.heads), 2)
        # POST: its body went to f, which may have acted on it: 502
        got = []
        for _ in range(2):
            r = self.get("/sink", method="POST", body=b"pay once")
            got.append(r.status)
        self.assertIn(502, got)
        self.assertTrue(all(h.startswith(b"GET") or h.startswith(b"POST")
                            for h in f.heads))
        self.assertEqual(sum(h.startswith(b"POST") for h in f.heads),
                         got.count(502))

    def test_buffered_body_sent_again_on_retry(self):
        # the PUT's body, buffered whole in memory, went to f, which
        # closed without a word; PUT may be repeated: b1 must get it all
        # again (it got the head alone, and waited for the body)
        f = self.fake(b"")
        b1, = self.backends("b1")
        self.proxy(f"server f {f.addr}\nserver b1 {b1.addr}\n"
                   "fail-max 0\nbuffer-request 64k\nresponse-timeout 2s",
                   workers=1)
        for i in range(4):
            body = b"put number %d " % i * 50
            r = self.get("/echo", method="PUT", body=body)
            self.assertEqual((r.status, r.body), (200, body))
        self.assertGreaterEqual(sum(h.startswith(b"PUT") for h in f.heads),
                                1, "f never had a PUT: nothing retried")

    def test_empty_chunked_body_ends_again_on_retry(self):
        # a streamed PUT whose chunked body is empty: nothing of it went
        # to f, so it is retried; b1 must get the last chunk too (it got
        # the head alone, and the client a 504 after the timeout)
        f = self.fake(b"")
        b1, = self.backends("b1")
        self.proxy(f"server f {f.addr}\nserver b1 {b1.addr}\n"
                   "fail-max 0\nresponse-timeout 2s", workers=1)
        for _ in range(4):
            with Conn(self.port) as c:
                c.send(request_bytes("PUT", "/echo",
                                     [("Transfer-Encoding", "chunked")]) +
                       b"0\r\n\r\n")
                r = c.read_response("PUT")
                self.assertEqual((r.status, r.body), (200, b""))
        self.assertGreaterEqual(sum(h.startswith(b"PUT") for h in f.heads),
                                1, "f never had a PUT: nothing retried")

    def test_half_a_response_head_is_not_retried(self):
        # f begins its answer and closes: it acted on the request, and
        # the next server's head met the parser where f's had stopped
        # (a 502, charged to the healthy server).  Now: 502, f's fault
        f = self.fake(b"HTTP/1.1 200 OK\r\nX-Partial: yes\r\n")
        b1, = self.backends("b1")
        self.proxy(f"server f {f.addr}\nserver b1 {b1.addr}\n"
                   "fail-max 0", workers=1)
        got = [self.get() for _ in range(4)]
        self.assertEqual(sorted(r.status for r in got), [200, 200, 502, 502])
        for r in got:
            if r.status == 200:
                self.assertEqual((r.header("Server"), r.body),
                                 ("b1", b"hello\n"))
        self.assertEqual(len(f.heads), 2)
        time.sleep(0.3)
        self.assertFalse([ln for ln in self.syslog.lines() if "up/b1" in ln],
                         self.syslog.lines())
        self.syslog.wait(r"up/f: server closed in the middle of its "
                         r"response head")

    def test_dead_server_retried_then_skipped(self):
        b1, = self.backends("b1")
        dead = f"127.0.0.1:{free_port()}"
        self.proxy(f"server dead {dead}\nserver b1 {b1.addr}\n"
                   "fail-max 2\nfail-timeout 30s")
        names = [self.who() for _ in range(12)]
        self.assertEqual(names, ["b1"] * 12)
        self.syslog.wait(rf"up/dead: connect {dead}: Connection refused")
        self.syslog.wait(r"server up/dead failed 2 times in a row, skipped "
                         r"for 30000 ms")
        # once skipped, not tried again
        n = len([ln for ln in self.syslog.lines()
                 if f"up/dead: connect {dead}" in ln])
        self.assertEqual(n, 2, "\n".join(self.syslog.lines()))

    def test_all_servers_dead_502_quickly(self):
        self.proxy(f"server d1 127.0.0.1:{free_port()}\n"
                   f"server d2 127.0.0.1:{free_port()}\n"
                   "fail-max 3\nretries 2")
        t0 = time.time()
        r = self.get()
        self.assertEqual(r.status, 502)
        self.assertLess(time.time() - t0, 1.0 * SLOW)
        self.assertEqual(r.header("Connection"), "close")
        self.syslog.wait(r"up/d\d: no server answered")
        # then every server is skipped: the answer stays an error, fast
        for _ in range(5):
            t0 = time.time()
            self.assertIn(self.get().status, (502, 503))
            self.assertLess(time.time() - t0, 1.0 * SLOW)

    def test_slow_server_504(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons) +
                   "\nresponse-timeout 500ms")
        t0 = time.time()
        r = self.get("/slow/3000")
        took = time.time() - t0
        self.assertEqual(r.status, 504)
        self.assertGreater(took, 0.45)
        self.assertLess(took, 2.0 * SLOW)
        self.syslog.wait("up/b1: response timeout")
        # below the timeout it is fine
        r = self.get("/slow/200")
        self.assertEqual((r.status, r.body), (200, b"slow\n"))

    def test_slow_client_is_not_a_slow_server(self):
        self.backends("b1")
        p = self.proxy(self.servers(*self.daemons) +
                       "\nresponse-timeout 500ms\nfail-max 1", workers=1)
        self.syslog.mark()
        with Conn(self.port, timeout=20) as c:
            # a reader that stalls past the timeout gets all of it
            n = 30 * MB
            c.send(request_bytes("GET", f"/source/{n}"))
            c.read_head()
            time.sleep(1.2)
            self.assertEqual(hashlib.sha256(c.read_exact(n)).digest(),
                             hashlib.sha256(source_bytes(n)).digest())
            # an upload slower than the timeout, then one that pauses
            blk = os.urandom(100000)
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(8 * len(blk)))]))
            for _ in range(8):
                c.send(blk)
                time.sleep(0.15)
            r = c.read_response("POST")
            self.assertEqual(r.body, f"{8 * len(blk)} {8 * sum(blk)}\n"
                             .encode())
            c.send(request_bytes("POST", "/sink",
                                 [("Transfer-Encoding", "chunked")]))
            c.send(b"%x\r\n%s\r\n" % (len(blk), blk))
            time.sleep(1.0)
            c.send(b"0\r\n\r\n")
            r = c.read_response("POST")
            self.assertEqual(r.body, f"{len(blk)} {sum(blk)}\n".encode())
        # the server was never blamed
        mine = [ln for ln in self.syslog.lines()
                if re.search(rf"testhttpd\[({p.pid}|{p.workers()[0]})\]",
                             ln)]
        self.assertFalse([ln for ln in mine if "response timeout" in ln or
                          "failed" in ln], mine)

    # keep-alive to the servers

    def fake(self, answer, keep=False):
        f = FakeServer(answer, keep)
        self.addCleanup(f.close)
        return f

    def test_bad_server_answers_502(self):
        bad = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6"
            b"\r\n\r\nhello",
            b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            b"NOT HTTP AT ALL\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
            b"Connection: upgrade\r\n\r\n",
            # a coding we would pass on as if it were none (RFC 9112 6.1)
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            b"",            # closes without answering
        ]
        for i, answer in enumerate(bad):
            f = self.fake(answer)
            self.proxy(f"server f {f.addr}\nretries 0\nfail-max 0",
                       workers=1, name=f"proxy{i}")
            r = self.get()
            self.assertEqual(r.status, 502, answer)
            self.assertEqual(r.header("Connection"), "close")

    def test_response_streams_as_it_comes(self):
        # what a server sends reaches the client as it comes, not when the
        # response ends or fills half a buffer: a stream of events, a long
        # poll, a slow server
        go = threading.Event()
        self.addCleanup(go.set)

        def serve(s, head):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                      b"text/event-stream\r\nTransfer-Encoding: "
                      b"chunked\r\n\r\n8\r\nevent: 1\r\n")
            go.wait(20)
            s.sendall(b"8\r\nevent: 2\r\n0\r\n\r\n")
        port = scripted_server(self, serve)
        self.proxy(f"server f 127.0.0.1:{port}\nretries 0", workers=1)
        with Conn(self.port, timeout=5 * SLOW) as c:
            c.send(request_bytes("GET", "/events"))
            # the head and the first event while the server holds the rest
            got = c.read_until(b"event: 1")
            self.assertIn(b"200 OK", got)
            self.assertNotIn(b"event: 2", got)
            go.set()
            r = c.read_until(b"0\r\n\r\n")
            self.assertIn(b"event: 2", r)

    def test_server_cut_mid_body_cuts_client(self):
        f = self.fake(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                      + b"x" * 5000)
        self.proxy(f"server f {f.addr}")
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/big"))
            r = c.read_head()
            self.assertEqual(r.header("Content-Length"), "100000")
            # the 5000 bytes, then the end: never a complete response
            self.assertTrue(c.closed_within(5 * SLOW))
            self.assertEqual(c.buf, b"x" * 5000)

    def test_server_closing_after_its_answer_to_a_slow_client(self):
        # the server writes its whole answer and closes while the client
        # has not read yet.  A small response buffer makes the proxy hold
        # bytes in uc->in often: the answer must arrive whole.  Before,
        # room made in uc->in was not read into when the client took
        # all (a hang, every framing), and the server's end read with
        # bytes still held cut the answer ("server closed mid-body")
        n = 6 * MB
        body = os.urandom(n)
        for framing in ("length", "chunked", "close"):
            if framing == "length":
                a = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n \
                    + body
            elif framing == "chunked":
                a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked" \
                    b"\r\n\r\n" + chunked(body, 65536)
            else:
                a = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
            f = self.fake(a)
            self.proxy(f"server f {f.addr}\nbuffer-response 1k", workers=1,
                       name=f"proxy-{framing}")
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.connect(("127.0.0.1", self.port))
            with Conn(self.port, sock=s, timeout=10) as c:
                c.send(request_bytes("GET", "/big"))
                time.sleep(1.0)     # the server is done and gone
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(len(r.body), n, framing)
                self.assertTrue(r.body == body, framing)

    def test_early_answer_before_the_body_is_relayed(self):
        # a server that refuses an upload from its head alone and closes
        # with the body unread (its kernel then resets the connection):
        # the client gets the server's 413, not a 502 for the write
        f = self.fake(b"HTTP/1.1 413 Payload Too Large\r\n"
                      b"Content-Length: 9\r\nConnection: close\r\n\r\n"
                      b"too big\r\n")
        self.proxy(f"server f {f.addr}\nretries 0\nfail-max 0", workers=1)
        blk = b"u" * 65536
        got = []
        for _ in range(5):
            with Conn(self.port, timeout=10) as c:
                c.send(request_bytes("POST", "/upload",
                                     [("Content-Length", str(200 * len(blk)))]))
                try:
                    for _ in range(200):
                        c.s.sendall(blk)
                except OSError:
                    pass        # the proxy may stop reading: fine
                r = c.read_response("POST")
                # the rest of the body is not read: the answer says
                # the connection ends
                got.append((r.status, r.header("Connection")))
        self.assertEqual(got, [(413, "close")] * 5)

    def test_interim_trailers_head_through_proxy(self):
        f = self.fake(lambda head: (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Trailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"
            if head.startswith(b"GET") else
            b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n"),
            keep=True)
        self.proxy(f"server f {f.addr}")
        with Conn(self.port) as c:
            r = c.request("GET", "/")
            self.assertEqual((r.status, r.body), (200, b"hello"))
            self.assertIsNone(r.header("Trailer"))
            r = c.request("HEAD", "/")
            self.assertEqual(r.header("Content-Length"), "12345")
            r = c.request("GET", "/")
            self.assertEqual(r.body, b"hello")
            self.assertFalse(c.closed_within(0.2))
            self.assertEqual(c.buf, b"")
        # a HEAD keeps the framing a GET would have had (real backend)
        b1, = self.backends("b1")
        self.proxy(self.servers(b1), name="proxy2")
        with Conn(self.port) as c:
            r = c.request("HEAD", "/source/777")
            self.assertEqual(r.header("Content-Length"), "777")
            r = c.request("HEAD", "/source/777?chunked")
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(r.header("Content-Length"))
            r = c.request("GET", "/status/204")
            self.assertEqual((r.status, r.body), (204, b""))
            self.assertEqual(c.request("GET", "/hello").body, b"hello\n")

    def test_expect_continue_through_proxy(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons))
        body = os.urandom(300000)
        with Conn(self.port) as c:
            c.send(request_bytes("POST", "/sink",
                                 [("Expect", "100-continue"),
                                  ("Content-Length", str(len(body)))]))
            r = c.read_response(interim=True)
            self.assertEqual(r.status, 100)
            c.send(body)
            r = c.read_response("POST", interim=True)
            # the server's own 100 is not passed on: one 100 only
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, f"{len(body)} {sum(body)}\n".encode())

    def test_client_gone_closes_upstream(self):
        b1, = self.backends("b1")
        p = self.proxy(self.servers(b1), workers=1)
        c = Conn(self.port)
        c.send(request_bytes("GET", f"/source/{200 * MB}"))
        c.read_head()
        c.read_exact(MB)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()       # a reset in the middle of the body
        # the proxy drops its upstream connection: no established one
        wait_for(lambda: not [x for x in tcp_conns(b1.port)
                              if x[0] == "ESTAB"], 5,
                 what="the upstream connection to close")
        self.assertEqual(self.get().status, 200)
        self.assertEqual(len(p.workers()), 1)

    def test_slow_client_bounds_proxy_memory(self):
        b1, = self.backends("b1")
        p = self.proxy(self.servers(b1), workers=1)
        w = p.workers()[0]
        n = 100 * MB
        with RssWatch(w) as rss, Conn(self.port, timeout=30) as c:
            c.send(request_bytes("GET", f"/source/{n}"))
            c.read_head()
            time.sleep(1.0)      # not reading: the proxy must not buffer
            stalled = rss.peak
            h = hashlib.sha256()
            left = n
            while left:
                part = c.read_exact(min(left, MB))
                h.update(part)
                left -= len(part)
            # and the other way: a 100 MB upload streamed through
            blk = os.urandom(MB)
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(100 * MB))]))
            for _ in range(100):
                c.s.sendall(blk)
            r = c.read_response("POST")
        self.assertEqual(h.hexdigest(),
                         hashlib.sha256(source_bytes(n)).hexdigest())
        self.assertEqual(r.body, f"{100 * MB} {sum(blk) * 100}\n".encode())
        print(f"proxy, 100 MB down to a stalled reader and 100 MB up: "
              f"worker RSS {rss.base // 1024} MB, +"
              f"{(stalled - rss.base) / 1024:.1f} MB while stalled, peak "
              f"+{rss.growth_mb:.1f} MB")
        self.assertLess((stalled - rss.base) / 1024, 10)
        self.assertLess(rss.growth_mb, 30)

    def test_keepalive_to_server_reused(self):
        b1, = self.backends("b1")
        self.proxy(self.servers(b1))
        ports, last = set(), 0
        for i in range(20):
            # a new client connection each time
            r = self.get("/peer")
            addr, nreq = r.body.decode().split()
            ports.add(addr)
            last = max(last, int(nreq))
        # at most one upstream connection per proxy worker
        self.assertLessEqual(len(ports), 2, ports)
        self.assertGreaterEqual(last, 10)
        conns = {loc for st, loc, peer in tcp_conns(b1.port)
                 if st == "ESTAB" and peer.endswith(f":{b1.port}")}
        self.assertLessEqual(len(conns), 2, tcp_conns(b1.port))
        print(f"keep-alive upstream: 20 requests over {len(ports)} "
              f"connection(s), up to {last} requests on one")

    def test_keepalive_off_opens_one_per_request(self):
        b1, = self.backends("b1")
        self.proxy(self.servers(b1) + "\nkeepalive 0")
        ports = {self.get("/peer").body.split()[0] for _ in range(6)}
        self.assertEqual(len(ports), 6)

    # bodies and tunnels

    def test_bodies_byte_exact_through_proxy(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons))
        data = os.urandom(3 * MB + 12345)
        with Conn(self.port, timeout=20) as c:
            # a chunked upload, odd chunk sizes, echoed back chunked
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (
                data[:1], data[1:8], data[8:65545], data[65545:])) + \
                b"0\r\n\r\n"
            c.send(request_bytes("POST", "/echo",
                                 [("Transfer-Encoding", "chunked")]) + body)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                             hashlib.sha256(data).hexdigest())
            # a Content-Length upload
            r = c.request("POST", "/echo", body=data)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                             hashlib.sha256(data).hexdigest())
            # a chunked download, then one with a length
            n = 5 * MB + 3
            r = c.request("GET", f"/source/{n}?chunked")
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertEqual(r.body, source_bytes(n))
            r = c.request("GET", f"/source/{n}")
            self.assertEqual(r.header("Content-Length"), str(n))
            self.assertEqual(r.body, source_bytes(n))
            r = c.request("POST", "/sink", [("Transfer-Encoding",
                                             "chunked")], chunked(data))
            self.assertEqual(r.body, f"{len(data)} {sum(data)}\n".encode())
        # an HTTP/1.0 client: a chunked answer comes close-delimited
        with Conn(self.port, timeout=20) as c:
            c.send(request_bytes("GET", "/source/300000?chunked",
                                 version="HTTP/1.0"))
            r = c.read_response()
            self.assertIsNone(r.header("Transfer-Encoding"))
            self.assertEqual(r.body, source_bytes(300000))

    def test_websocket_tunnel(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons))
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/ws", [("Connection", "Upgrade"),
                                                ("Upgrade", "testecho")]) +
                   b"early bytes|")
            r = c.read_response()
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("Upgrade"), "testecho")
            self.assertEqual(r.header("Connection").lower(), "upgrade")
            self.assertEqual(c.read_exact(12), b"early bytes|")
            data = os.urandom(2 * MB)
            got = []

            def reader():
                got.append(c.read_exact(len(data)))
            t = threading.Thread(target=reader)
            t.start()
            for i in range(0, len(data), 100000):
                c.s.sendall(data[i:i + 100000])
            t.join(10 * SLOW)
            self.assertEqual(got and hashlib.sha256(got[0]).digest(),
                             hashlib.sha256(data).digest())
            # our end of stream goes through; the echo ends, and so do we
            c.s.shutdown(socket.SHUT_WR)
            self.assertTrue(c.closed_within(5 * SLOW))
        # an Upgrade the server refuses is a plain answer
        r = self.get("/ws")
        self.assertEqual(r.status, 426)

    def test_h2c_upgrade_is_not_a_tunnel(self):
        # a server that switched to h2c would read HTTP/2 requests that
        # the proxy never routed, filtered or logged (RFC 9113 3.1): the
        # Upgrade field is dropped and the request goes on as a plain one
        def answer(head):
            if b"\r\nupgrade:" in head.lower():
                return (b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        f = self.fake(answer, keep=True)
        self.proxy(f"server f {f.addr}\nretries 0", workers=1)
        for up in ("h2c", "H2C", "websocket, h2c", "h2c/1.0"):
            with Conn(self.port) as c:
                c.send(request_bytes("GET", "/a", [
                    ("Connection", "Upgrade, HTTP2-Settings"),
                    ("Upgrade", up), ("HTTP2-Settings", "AAMAAABkAARAAAAA")]))
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"ok"), up)
                self.assertIsNone(r.header("Upgrade"))
                # still HTTP/1.1 on both sides: the next request is routed
                c.send(request_bytes("GET", "/b"))
                self.assertEqual(c.read_response().status, 200)
        self.assertEqual(len(f.heads), 8)
        for h in f.heads:
            self.assertNotIn(b"upgrade", h.lower())
            self.assertNotIn(b"http2-settings", h.lower())
        # and a server that switches anyway is not followed
        f2 = self.fake(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c"
                       b"\r\nConnection: Upgrade\r\n\r\n")
        self.proxy(f"server f {f2.addr}\nretries 0\nfail-max 0",
                   workers=1, name="proxy2")
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/", [("Connection", "Upgrade"),
                                              ("Upgrade", "h2c")]))
            self.assertEqual(c.read_response().status, 502)

    def test_tunnel_idle_timeout(self):
        self.backends("b1")
        self.proxy(self.servers(*self.daemons) + "\ntunnel-timeout 500ms")
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/ws", [("Connection", "upgrade"),
                                                ("Upgrade", "testecho")]))
            self.assertEqual(c.read_response().status, 101)
            for _ in range(3):      # traffic keeps it open
                time.sleep(0.3)
                c.send(b"ping")
                self.assertEqual(c.read_exact(4), b"ping")
            t0 = time.time()
            self.assertTrue(c.closed_within(3 * SLOW))
            self.assertGreater(time.time() - t0, 0.3)

    def test_buffer_request_spills_to_file(self):
        b1, = self.backends("b1")
        p = self.proxy(self.servers(b1) + "\nbuffer-request 64k")
        # a body larger than the buffer: in a file until it is whole
        data = os.urandom(4 * MB)
        with Conn(self.port, timeout=20) as c:
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(len(data)))]))
            c.send(data[:3 * MB])

            def spilled():
                for w in p.workers():
                    for fd in os.listdir(f"/proc/{w}/fd"):
                        try:
                            t = os.readlink(f"/proc/{w}/fd/{fd}")
                        except OSError:
                            continue
                        if "proxy-body" in t:
                            return t
                return None
            path = wait_for(spilled, 5, what="a spilled body file")
            self.assertIn("(deleted)", path)
            # nothing went to the server yet: no connection at all
            self.assertEqual([x for x in tcp_conns(b1.port)
                              if x[0] == "ESTAB"], [])
            c.send(data[3 * MB:])
            r = c.read_response("POST")
            self.assertEqual(r.body, f"{len(data)} {sum(data)}\n".encode())
        wait_for(lambda: not spilled(), 5, what="the body file to go")
        # the server gets a length, not chunks
        r = self.get("/head", method="POST", headers=[
            ("Transfer-Encoding", "chunked")], body=chunked(b"x" * 100, 7))
        line, h = self.sent_head(r)
        self.assertEqual(h.get("content-length"), ["100"])
        self.assertNotIn("transfer-encoding", h)

    # balancing

    def pinned_conns(self, p):
        """One keep-alive client connection to each proxy worker."""
        ws = p.wait_workers(2)
        conns = []
        for w in ws:
            with only_worker(ws, w):
                c = Conn(self.port)
                wait_for(lambda: socket_owner(c.local_port, self.port),
                         5, what="the connection to be accepted")
            self.assertEqual(socket_owner(c.local_port, self.port), w)
            conns.append(c)
        return conns

    def test_round_robin_across_workers(self):
        bs = self.backends("s1", "s2", "s3")
        p = self.proxy(self.servers(*bs))
        a, b = self.pinned_conns(p)
        got = []
        for i in range(12):
            # the two workers take turns
            r = (a, b)[i % 2].request("GET", "/hello")
            got.append(r.header("Server"))
        a.close()
        b.close()
        self.assertEqual(got, ["s1", "s2", "s3"] * 4)

    def test_reload_under_load_no_errors(self):
        b1, b2 = self.backends("r1", "r2")
        p = self.proxy(self.servers(b1))
        stop = threading.Event()
        seen, errors = [], []

        def client():
            # keep-alive, and like real clients: a reused connection that
            # the server closed before answering is retried on a new one
            while not stop.is_set():
                with Conn(self.port) as c:
                    for i in range(5):
                        try:
                            c.send(request_bytes("GET", "/hello"))
                            r = c.read_response()
                        except (OSError, Closed) as e:
                            if i == 0 or c.buf:
                                errors.append(repr(e))
                            break
                        if r.status != 200:
                            errors.append(r.status)
                        seen.append(r.header("Server"))
        ts = [threading.Thread(target=client) for _ in range(3)]
        for t in ts:
            t.start()
        try:
            time.sleep(0.3)
            old = set(p.workers())
            p.write_conf(PROXY.format(workers=2, port=self.port, extra="",
                                      upstream=self.servers(b1, b2)))
            p.signal(signal.SIGHUP)
            self.syslog.wait(rf"testhttpd\[{p.pid}\]: reload done")
            wait_for(lambda: not (set(p.workers()) & old), 10,
                     what="the old workers to leave")
            n = len(seen)
            wait_for(lambda: len(seen) > n + 20, 5, what="more requests")
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.assertEqual(errors, [])
        self.assertEqual(set(seen[n:]), {"r1", "r2"})

    def test_weighted_round_robin_interleaves(self):
        h, l = self.backends("heavy", "light")
        self.proxy(self.servers(h, l, opts={"heavy": "weight 5"}))
        got = [self.who() for _ in range(12)]
        self.assertEqual(got.count("light"), 2, got)
        run = longest = 0
        for g in got:
            run = run + 1 if g == "heavy" else 0
            longest = max(longest, run)
        self.assertLess(longest, 6, got)
        print("weights 5:1 ->", " ".join(g[0] for g in got))

    def test_leastconn_prefers_idle_server(self):
        bs = self.backends("x1", "x2")
        self.proxy(self.servers(*bs) + "\nbalance leastconn")
        # warm up: both servers used, idle connections left in the pools
        self.assertEqual({self.who() for _ in range(4)}, {"x1", "x2"})
        held = []

        def slow():
            held.append(self.who(path=f"/slow/{1500 * SLOW}"))
        t = threading.Thread(target=slow)
        t.start()

        time.sleep(0.3 * SLOW)
        got = [self.who() for _ in range(6)]
        t.join(10 * SLOW)
        self.assertEqual(len(held), 1)
        other = {"x1": "x2", "x2": "x1"}[held[0]]
        self.assertEqual(got, [other] * 6,
                         f"slow request held on {held[0]}")

    def test_source_hash_stable_per_client(self):
        bs = self.backends("h1", "h2", "h3")
        self.proxy(self.servers(*bs) + "\nbalance source")
        seen = {}
        for i in range(1, 9):
            src = f"127.0.0.{i}"
            names = {self.who(source=src) for _ in range(3)}
            self.assertEqual(len(names), 1, f"{src} moved: {names}")
            seen[src] = names.pop()
        print("source hash:", seen)
        self.assertGreaterEqual(len(set(seen.values())), 2, seen)

    def test_uri_hash_and_static_rr(self):
        bs = self.backends("u1", "u2", "u3")
        self.proxy(self.servers(*bs) + "\nbalance uri", name="uri")
        paths = {}
        for i in range(12):
            # the query is not part of the key
            path = f"/source/{i}"
            names = {self.get(f"{path}?n={j}").header("Server")
                     for j in range(3)}
            self.assertEqual(len(names), 1, f"{path} moved: {names}")
            paths[path] = names.pop()
        self.assertGreaterEqual(len(set(paths.values())), 2, paths)
        h, l = bs[0], bs[1]
        self.proxy(self.servers(h, l, opts={h.name: "weight 3"}) +
                   "\nbalance static-rr", workers=1, name="static")
        self.assertEqual([self.who() for _ in range(8)],
                         ["u1", "u1", "u1", "u2"] * 2)

    def test_backup_only_when_others_down(self):
        b1, b2 = self.backends("main", "spare")
        self.proxy(self.servers(b1, b2, opts={"spare": "backup"}) +
                   "\nfail-max 1\nfail-timeout 1s")
        self.assertEqual({self.who() for _ in range(6)}, {"main"})
        b1.stop()
        self.assertEqual([self.who() for _ in range(6)], ["spare"] * 6)
        self.syslog.wait("server up/main failed 1 times in a row")
        # main comes back: after its skip time, it has the traffic again
        b1.start()
        wait_port("127.0.0.1", b1.port)
        wait_for(lambda: self.who() == "main", 5, what="main back")
        self.assertEqual({self.who() for _ in range(6)}, {"main"})

    def test_maxconn_queue_then_503(self):
        b1, = self.backends("b1")
        self.proxy(self.servers(b1, opts={"b1": "maxconn 1"}) +
                   "\nqueue-timeout 1200ms")
        # one at a time, sequentially: never full
        self.assertEqual([self.get().status for _ in range(6)], [200] * 6)
        res = {}

        def call(key, path):
            t0 = time.time()
            r = self.get(path)
            res[key] = (r.status, time.time() - t0)
        # a request while the slot is taken waits for it
        t = threading.Thread(target=call, args=("slow", "/slow/700"))
        t.start()
        time.sleep(0.25)
        call("queued", "/hello")
        t.join()
        self.assertEqual(res["slow"][0], 200)
        self.assertEqual(res["queued"][0], 200)
        self.assertGreater(res["queued"][1], 0.3)
        # past queue-timeout: 503
        t = threading.Thread(target=call, args=("slow", "/slow/2500"))
        t.start()
        time.sleep(0.25)
        call("late", "/hello")
        t.join()
        self.assertEqual(res["slow"][0], 200)
        self.assertEqual(res["late"][0], 503)
        self.assertGreater(res["late"][1], 1.1)
        self.assertLess(res["late"][1], 2.2 * SLOW)
        self.syslog.wait("up/b1: all servers full|up: all servers full")
