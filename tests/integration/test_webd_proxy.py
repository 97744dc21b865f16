"""webd's reverse proxy (webd/server_proxy.c on common/proxy.c) to a
testhttpd upstream: keep-alive reuse seen from the upstream's side, a
slow client that never holds the upstream (request bodies buffered
before the upstream sees the request, responses taken whole while the
client reads slowly), 502 when the upstream is down, 504 when it is too
slow, Unix-socket upstreams, the forwarded fields."""
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import SLOW, dead_port, free_port, wait_for, wait_port
from httpc import (Conn, HttpTest, chunked, get, make_cert, request_bytes,
                   silent_server, source_bytes, tcp_conns)
from webdtest import clf, raw_request, tls_get, webd_conf, write

UPSTREAM = """
workers 1
pidfile "@PIDFILE@"
listen {listen}
server-name "app"
max-body-size 0
"""

WEBD = """
server "site" default {{
	listen 127.0.0.1:{port}
	proxy up
	location "/static/" {{
		root "@DIR@/www"
	}}
{more}
}}
upstream up {{
	server app1 {upstream}
	{upextra}
}}
"""

# headers and HSTS on proxied answers, a location that only adds a field
# (and so proxies as its server does), error pages of proxied locations
MORE = """
	listen 127.0.0.1:{tport} tls
	tls {{
		certificate "@DIR@/cert.crt" key "@DIR@/cert.key"
	}}
	hsts 1h
	root "@DIR@/www"
	header X-Site "site"
	location "/peer" exact {{
		header X-Loc "peer"
	}}
	location "/hello" exact {{
		header Content-Type "text/x-override"
	}}
	location "/down/" {{
		proxy dead
		error-page 502 "/err/502.html"
	}}
}}
upstream dead {{
	server d 127.0.0.1:{dead}
	retries 0
"""

KB = 1024


def upstream_acked(port):
    """Bytes the sockets bound to <port> sent and had acknowledged."""
    out = subprocess.run(["ss", "-tinH", "state", "established",
                          f"( sport = :{port} )"], stdout=subprocess.PIPE,
                         text=True, timeout=5).stdout
    return sum(int(x) for x in re.findall(r"bytes_acked:(\d+)", out))


def client_queued(s):
    """Bytes waiting in the receive queue of our socket <s>."""
    lp, rp = s.getsockname()[1], s.getpeername()[1]
    out = subprocess.run(["ss", "-tnH", "state", "established",
                          f"( sport = :{lp} and dport = :{rp} )"],
                         stdout=subprocess.PIPE, text=True,
                         timeout=5).stdout.split()
    return int(out[0])


class ProxyTest(HttpTest):
    def upstream(self, listen=None):
        port = free_port()
        d = self.daemon("testhttpd", UPSTREAM.format(
            listen=listen or f"127.0.0.1:{port}"), name="app")
        d.start()
        d.port = port
        if listen is None:
            wait_port("127.0.0.1", port)
        return d

    def webd(self, upstream, upextra="", extra="", more=""):
        self.port = free_port()
        write(os.path.join(self.dir, "www", "static", "s.txt"), b"static\n")
        d = self.daemon("webd", webd_conf(WEBD.format(
            port=self.port, upstream=upstream, upextra=upextra,
            more=more), 1, extra))
        d.start()
        wait_port("127.0.0.1", self.port)
        return d

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def established(self, port):
        return [c for c in tcp_conns(port) if c[0] == "ESTAB"]

    def test_proxied_and_static_side_by_side(self):
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}")
        r = self.get("/hello")
        self.assertEqual((r.status, r.body), (200, b"hello\n"))
        self.assertEqual(r.header("Server"), "app")
        r = self.get("/static/s.txt")
        self.assertEqual((r.status, r.body), (200, b"static\n"))
        self.assertEqual(r.header("Server"), "webd")
        # what the upstream was sent
        r = self.get("/head", headers=[("X-Forwarded-For", "10.9.9.9"),
                                       ("Connection", "x-drop"),
                                       ("X-Drop", "1")],
                     source="127.0.0.3")
        lines = r.body.decode().split("\r\n")
        self.assertEqual(lines[0], "GET /head HTTP/1.1")
        hdrs = dict(ln.lower().split(": ", 1) for ln in lines[1:] if ln)
        self.assertEqual(hdrs["host"], "test")
        self.assertEqual(hdrs["x-forwarded-for"], "10.9.9.9, 127.0.0.3")
        self.assertEqual(hdrs["x-forwarded-proto"], "http")
        self.assertNotIn("x-drop", hdrs)

    def test_expect_answered_here_not_passed_on(self):
        """webd reads a body whole before the app sees the request: the
        client gets its 100 from webd, and the app no Expect field (as
        nginx does), which would only have it send a 100 no one waits
        for."""
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}")
        with Conn(self.port) as c:
            c.send(b"POST /head HTTP/1.1\r\nHost: x\r\n"
                   b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            self.assertEqual(c.read_exact(25),
                             b"HTTP/1.1 100 Continue\r\n\r\n")
            c.send(b"hello")
            r = c.read_response()
        self.assertEqual(r.status, 200)
        head = r.body.decode().lower()
        self.assertTrue(head.startswith("post /head http/1.1\r\n"), head)
        self.assertIn("content-length: 5\r\n", head)
        self.assertNotIn("expect", head)

    def test_dot_segments_never_reach_the_app(self):
        """The app gets the target as the client sent it, and webd chose
        the location on the path with its dot segments resolved: an app
        that did not resolve "/admin/%2e%2e/hello" would serve /admin
        under the rules of another location.  Such a path is refused."""
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}", more="""
	location "/admin/" {
		proxy up
		deny 0.0.0.0/0
	}""")
        self.assertEqual(self.get("/admin/x").status, 403)
        for path in ("/admin/%2e%2e/hello", "/admin/%2E%2e/hello",
                     "/admin/../hello", "/admin/.%2e/hello", "/./hello",
                     "/hello/.", "/x/%2e/../hello"):
            r, raw = raw_request(self.port, path)
            self.assertEqual(r.status, 400, (path, raw))
            self.assertNotIn(b"hello", r.body)
        # names with dots in them are not dot segments
        for path in ("/hello?x=/../", "/x.y/..z/%2e.x"):
            r, raw = raw_request(self.port, path)
            self.assertNotEqual(r.status, 400, (path, raw))
        # files: the path is resolved and served from beneath the root
        r = self.get("/static/x/../s.txt")
        self.assertEqual((r.status, r.body), (200, b"static\n"))

    def test_try_files_then_the_app(self):
        """nginx's try_files $uri @app: a file that exists is served,
        the rest goes to the upstream; so do the methods files never
        answer and hidden names (the app decides), and the dot segments
        are refused as on any proxied path."""
        up = self.upstream()
        www = os.path.join(self.dir, "www")
        write(os.path.join(www, "page.html"), b"page\n")
        write(os.path.join(www, "echo"), b"the file echo\n")
        write(os.path.join(www, ".env"), b"SECRET=1\n")
        self.webd(f"127.0.0.1:{up.port}", more="""
	location "/" {
		root "@DIR@/www"
		try-files "$uri" "@up"
	}""")
        r = self.get("/page.html")
        self.assertEqual((r.status, r.body, r.header("Server")),
                         (200, b"page\n", "webd"))
        r = self.get("/hello")
        self.assertEqual((r.status, r.body, r.header("Server")),
                         (200, b"hello\n", "app"))
        r = self.get("/echo")
        self.assertEqual((r.status, r.body), (200, b"the file echo\n"))
        r = self.get("/echo", method="POST", body=b"to the app")
        self.assertEqual((r.status, r.body, r.header("Server")),
                         (200, b"to the app", "app"))
        r = self.get("/.env")
        self.assertEqual(r.header("Server"), "app")
        self.assertNotIn(b"SECRET", r.body)
        r, raw = raw_request(self.port, "/x/%2e%2e/hello")
        self.assertEqual(r.status, 400, raw)
        # the other locations keep their ways
        r = self.get("/static/s.txt")
        self.assertEqual((r.status, r.body), (200, b"static\n"))
        r = self.get("/static/none")
        self.assertEqual((r.status, r.header("Server")), (404, "webd"))

    def test_timed_log_format(self):
        """format timed: combined, the forwarded field, then the request's
        time and the app's time to its response head, in seconds
        (nginx's $request_time and $upstream_header_time)."""
        up = self.upstream()
        w1 = self.webd(f"127.0.0.1:{up.port}",
                       extra="access-log syslog format timed")
        self.assertEqual(self.get("/slow/300").status, 200)
        self.assertEqual(self.get("/static/s.txt").status, 200)
        f = clf(self.syslog.wait(r'"GET /slow/300 HTTP/1\.1" 200 ',
                                 tree=w1.pid))
        self.assertGreaterEqual(float(f["urt"]), 0.29)
        self.assertLess(float(f["urt"]), 0.29 + 2 * SLOW)
        self.assertGreaterEqual(float(f["rt"]), float(f["urt"]))
        f = clf(self.syslog.wait(r'"GET /static/s\.txt HTTP/1\.1" 200 ',
                                 tree=w1.pid))
        self.assertEqual(f["urt"], "-")
        self.assertLess(float(f["rt"]), 1.0)
        up.stop()
        self.assertEqual(self.get("/hello").status, 502)
        f = clf(self.syslog.wait(r'"GET /hello HTTP/1\.1" 502 ',
                                 tree=w1.pid))
        self.assertEqual((f["xff"], f["urt"]), ("-", "-"))
        # a streamed body cut at the limit: the app never answered
        w1.stop()
        up = self.upstream()
        w2 = self.webd(f"127.0.0.1:{up.port}", upextra="buffer-request 0",
                       extra="access-log syslog format timed\n"
                       "max-body-size 1k")
        with Conn(self.port, timeout=10) as c:
            c.send(request_bytes("POST", "/sink", [
                ("Transfer-Encoding", "chunked")]) +
                chunked(os.urandom(10 * KB), 1024))
            self.assertEqual(c.read_response("POST").status, 413)
        f = clf(self.syslog.wait(r'"POST /sink HTTP/1\.1" 413 ',
                                 tree=w2.pid))
        self.assertEqual(f["urt"], "-")

    def test_keepalive_reuse_seen_upstream(self):
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}")
        seen = []
        for i in range(10):
            # a new client connection each time; one upstream connection
            addr, nreq = self.get("/peer").body.decode().split()
            seen.append((addr, int(nreq)))
        self.assertEqual(len({a for a, n in seen}), 1, seen)
        self.assertEqual([n for a, n in seen], list(range(1, 11)))
        self.assertEqual(len(self.established(up.port)), 2)  # both ends

    def test_unix_socket_upstream(self):
        sock = os.path.join(self.dir, "app.sock")
        self.upstream(listen=f'"unix:{sock}" mode 0666')
        wait_for(lambda: os.path.exists(sock), 5, what=sock)
        self.webd(f"unix:{sock}")
        for _ in range(3):
            r = self.get("/hello")
            self.assertEqual((r.status, r.body), (200, b"hello\n"))

    def test_slow_request_body_buffered_before_upstream(self):
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}")
        data = os.urandom(64 * KB)
        seen = []
        with Conn(self.port, timeout=10) as c:
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(len(data)))]))
            # trickled over a second; the upstream must see nothing yet
            step = len(data) // 16
            for i in range(16):
                time.sleep(0.06)
                seen += [x for x in tcp_conns(up.port)
                         if x[0] != "TIME-WAIT"]
                c.send(data[i * step:(i + 1) * step])
            t0 = time.time()
            r = c.read_response("POST")
            took = time.time() - t0
        self.assertEqual(seen, [], "the upstream was contacted before the "
                         "body was whole")
        self.assertEqual((r.status, r.body),
                         (200, f"{len(data)} {sum(data)}\n".encode()))
        # and then it went at once
        self.assertLess(took, 1.0 * SLOW)
        self.assertEqual(len(self.established(up.port)), 2)

    def slow_reader(self):
        """A client that asks for a response larger than the kernel holds
        on the way to it (a 4 MB send buffer at most, the client's 4 KB)
        and reads nothing yet; returns (socket, size, start time, seconds
        until the upstream had all its bytes acknowledged by webd)."""
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}", upextra="buffer-response 12m")
        self.up = up
        n = 8 * 1024 * KB
        self.addr1 = self.get("/peer").body.split()[0]
        # all the upstream will send: the head (as for /source/1, with a
        # longer Content-Length) and the body, on top of what it sent
        # (this connection stays open meanwhile, so that what it counts
        # does not change)
        direct = Conn(up.port)
        r = direct.request("GET", "/source/1")
        total = upstream_acked(up.port) + len(r.head) + \
            len(str(n)) - 1 + n
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10 * SLOW)
        s.connect(("127.0.0.1", self.port))
        s.sendall(request_bytes("GET", f"/source/{n}"))
        t0 = time.time()
        # seen from the upstream: its socket's bytes all acknowledged
        try:
            wait_for(lambda: upstream_acked(up.port) >= total, 5,
                     step=0.02, what="the upstream to finish writing")
        finally:
            direct.close()
        return s, n, t0, time.time() - t0

    def read_slowly(self, s, n, t0):
        with Conn(self.port, sock=s, timeout=10) as c:
            got = b""
            head = c.read_head()
            while len(got) < n:
                got += c.read_exact(min(256 * KB, n - len(got)))
                time.sleep(0.01)
        self.assertEqual(head.status, 200)
        self.assertEqual(got, source_bytes(n))
        return time.time() - t0

    def test_slow_reader_does_not_hold_upstream_write(self):
        s, n, t0, up_done = self.slow_reader()
        # when the upstream is done, the client has had next to nothing:
        # the rest is in webd
        got = client_queued(s)
        self.assertLess(got, n // 4)
        time.sleep(0.3)
        client_done = self.read_slowly(s, n, t0)
        print(f"slow reader: upstream done writing after "
              f"{up_done * 1000:.0f} ms (the client had {got} bytes), "
              f"client done after {client_done * 1000:.0f} ms")

    # The upstream connection goes back to the pool once the whole
    # response is in webd's buffer: a slow reader never keeps it (and an
    # appd worker behind it) out of the pool.
    def test_slow_reader_does_not_hold_upstream_connection(self):
        s, n, t0, up_done = self.slow_reader()
        try:
            # the whole response is in webd: the next request goes over
            # the same upstream connection (its third)
            addr, nreq = self.get("/peer").body.split()
            self.assertEqual((addr, int(nreq)), (self.addr1, 3))
        finally:
            self.read_slowly(s, n, t0)

    def test_upstream_down_502(self):
        mark = secrets.token_hex(6)
        self.webd(f"127.0.0.1:{free_port()}", upextra="retries 1")
        t0 = time.time()
        r, data = raw_request(self.port, f"/api/{mark}<script>")
        self.assertEqual(r.status, 502)
        self.assertLess(time.time() - t0, 2.0 * SLOW)
        self.assertNotIn(mark.encode(), r.body)
        self.assertNotIn(b"<script", r.body)
        self.syslog.wait(r"up/app1: connect 127\.0\.0\.1:\d+: Connection "
                         "refused")
        self.syslog.wait(rf'webd\[\d+\]: site 127\.0\.0\.1 - - \[.*\] '
                         rf'"GET /api/{mark}<script> HTTP/1\.1" 502 ')
        # the static part still works
        self.assertEqual(self.get("/static/s.txt").status, 200)

    def test_upstream_slow_504(self):
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}", upextra="response-timeout 400ms")
        t0 = time.time()
        r = self.get("/slow/5000")
        took = time.time() - t0
        self.assertEqual(r.status, 504)
        self.assertGreater(took, 0.35)
        self.assertLess(took, 2.0 * SLOW)
        self.syslog.wait("up/app1: response timeout")
        self.syslog.wait(r'"GET /slow/5000 HTTP/1\.1" 504 ')
        r = self.get("/slow/50")
        self.assertEqual((r.status, r.body), (200, b"slow\n"))

    def test_client_gone_lets_the_upstream_go(self):
        """A client that closes while the app is still working frees the
        app at once, as nginx does: the upstream connection is closed
        (an app worker is not held for a reader that left) and the
        request is logged as 499."""
        port, seen = silent_server(self)
        self.webd(f"127.0.0.1:{port}")
        mark = secrets.token_hex(6)
        with socket.create_connection(("127.0.0.1", self.port)) as c:
            c.sendall(f"GET /api/{mark} HTTP/1.1\r\nHost: x\r\n\r\n"
                      .encode())
            time.sleep(0.3)
            c.shutdown(socket.SHUT_WR)
            wait_for(lambda: "eof" in seen, 10 * SLOW, what="upstream EOF")
        self.assertTrue(seen["eof"], seen)
        self.assertLess(seen["eof"], 2.0 * SLOW)
        self.syslog.wait(rf'"GET /api/{mark} HTTP/1\.1" 499 0')

    def test_pipelined_then_fin_all_answered(self):
        """Bytes of a next request before the FIN say the client still
        reads its answers: it is not taken as gone."""
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}")

        def pipeline(reqs, fin_after=0):
            with socket.create_connection(("127.0.0.1", self.port)) as c:
                c.sendall(b"".join(
                    f"GET {r} HTTP/1.1\r\nHost: x\r\n".encode() +
                    (b"Connection: close\r\n" if i == len(reqs) - 1
                     else b"") + b"\r\n" for i, r in enumerate(reqs)))
                time.sleep(fin_after)
                c.shutdown(socket.SHUT_WR)
                c.settimeout(10)
                data = b""
                while d := c.recv(65536):
                    data += d
            self.assertEqual(data.count(b"HTTP/1.1 200 "), len(reqs),
                             (reqs, data))
            return data
        data = pipeline(["/slow/300", "/hello"])
        self.assertIn(b"slow\n", data)
        self.assertTrue(data.endswith(b"hello\n"), data)
        # the last one proxied, after answers that went at once: the
        # FIN finds nothing behind it, but the client pipelines
        data = pipeline(["/static/s.txt", "/slow/300"])
        self.assertTrue(data.endswith(b"slow\n"), data)
        data = pipeline(["/hello", "/slow/800"], fin_after=0.3)
        self.assertTrue(data.endswith(b"slow\n"), data)

    def test_rotation_reopens_the_log_of_a_retiring_generation(self):
        """A reload may change the access log's path while the old
        generation still serves a slow request: a rotation then makes
        that file anew too, so that the old workers' last lines do not
        go on into the rotated file."""
        up = self.upstream()
        logs = os.path.join(self.dir, "logs")
        os.makedirs(logs)
        a, b = os.path.join(logs, "a.log"), os.path.join(logs, "b.log")
        d = self.webd(f"127.0.0.1:{up.port}", extra=f'access-log "{a}"')
        got = {}
        t = threading.Thread(target=lambda: got.update(
            r=self.get("/slow/2000")))
        t.start()
        time.sleep(0.3)
        self.syslog.mark()
        d.write_conf(open(d.conf_path).read().replace(a, b))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"webd\[{d.pid}\]: reload done", 10)
        os.rename(a, a + ".1")
        d.signal(signal.SIGUSR1)
        t.join(10 * SLOW)
        self.assertEqual(got["r"].status, 200)
        wait_for(lambda: os.path.exists(a) and
                 b"/slow/2000" in open(a, "rb").read(), 5,
                 what="the old worker's line in the new a.log")
        self.assertNotIn(b"/slow/2000", open(a + ".1", "rb").read())

    def test_max_body_size_per_location(self):
        """An upload location takes more than the rest (nginx's
        client_max_body_size in a location): a length over the
        location's limit is 413 before a byte of the body is read, a
        chunked body is cut at it; the server's own limit holds
        elsewhere."""
        up = self.upstream()
        self.webd(f"127.0.0.1:{up.port}", extra="max-body-size 1k",
                  more="""
	location "/sink" exact {
		max-body-size 64k
	}""")

        def post(path, data, chunk=False):
            with Conn(self.port, timeout=10) as c:
                if chunk:
                    c.send(request_bytes("POST", path, [
                        ("Transfer-Encoding", "chunked")]) +
                        chunked(data, 4096))
                else:
                    c.send(request_bytes("POST", path, body=data))
                return c.read_response("POST")
        data = os.urandom(10 * KB)
        for chunk in (False, True):
            r = post("/sink", data, chunk)
            self.assertEqual((r.status, r.body),
                             (200, f"{len(data)} {sum(data)}\n".encode()))
            self.assertEqual(post("/sink", os.urandom(100 * KB),
                                  chunk).status, 413)
            self.assertEqual(post("/echo", data, chunk).status, 413)
        self.assertEqual(post("/echo", b"x" * 1000).status, 200)
        # a length over the limit: answered from the head, and closed
        with Conn(self.port, timeout=10) as c:
            c.send(request_bytes("POST", "/sink", [
                ("Content-Length", str(1 << 30))]))
            r = c.read_response("POST")
            self.assertEqual((r.status, r.header("Connection")),
                             (413, "close"))

    def test_big_request_body_spills_to_tmpdir(self):
        up = self.upstream()
        tmp = os.path.join(self.dir, "spill")
        os.makedirs(tmp)
        os.chmod(tmp, 0o1777)
        d = self.webd(f"127.0.0.1:{up.port}", upextra="buffer-request 16k",
                      extra=f'tmpdir "{tmp}"')
        data = os.urandom(300 * KB)

        def spilled():
            for w in d.workers():
                for fd in os.listdir(f"/proc/{w}/fd"):
                    try:
                        t = os.readlink(f"/proc/{w}/fd/{fd}")
                    except OSError:
                        continue
                    if t.startswith(tmp + "/"):
                        return t
            return None
        with Conn(self.port, timeout=10) as c:
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(len(data)))]))
            c.send(data[:200 * KB])
            path = wait_for(spilled, 5, what="a body file in the tmpdir")
            self.assertIn("(deleted)", path)
            self.assertEqual([x for x in tcp_conns(up.port)
                              if x[0] == "ESTAB"], [])
            c.send(data[200 * KB:])
            r = c.read_response("POST")
        self.assertEqual((r.status, r.body),
                         (200, f"{len(data)} {sum(data)}\n".encode()))
        wait_for(lambda: not spilled(), 5, what="the body file to go")

    def test_tmpdir_full_is_a_clear_error(self):
        """A body that does not fit in a full tmpdir gets an error
        answer and a log line that says why, the file goes, and the
        next request is served."""
        up = self.upstream()
        tmp = os.path.join(self.dir, "full")
        os.makedirs(tmp)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                        tmp], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", tmp])
        os.chmod(tmp, 0o1777)
        self.webd(f"127.0.0.1:{up.port}", upextra="buffer-request 16k",
                  extra=f'tmpdir "{tmp}"')
        data = os.urandom(1024 * KB)
        with Conn(self.port, timeout=10) as c:
            c.send(request_bytes("POST", "/sink",
                                 [("Content-Length", str(len(data)))]))
            try:
                c.send(data)
            except OSError:
                pass
            r = c.read_response("POST")
        self.assertEqual(r.status, 500, r)
        self.syslog.wait(r"up: cannot buffer the request body in "
                         rf"{tmp}: No space left on device")
        # the unnamed file is gone with the request: the space is back
        self.assertEqual(os.listdir(tmp), [])
        wait_for(lambda: os.statvfs(tmp).f_bfree ==
                 os.statvfs(tmp).f_blocks, 5, what="the space back")
        self.assertEqual(self.get("/hello").status, 200)

    def more(self, up):
        self.tport = free_port()
        make_cert(self.dir, "cert", "ec", ["localhost"])
        write(os.path.join(self.dir, "www", "err", "502.html"),
              b"<p>our 502 page</p>\n")
        return self.webd(f"127.0.0.1:{up.port}", more=MORE.format(
            tport=self.tport, dead=dead_port()))

    def test_headers_and_hsts_on_proxied_answers(self):
        up = self.upstream()
        self.more(up)
        r = self.get("/pid")
        self.assertEqual((r.status, r.header("Server")), (200, "app"))
        self.assertEqual(r.all("X-Site"), ["site"])
        self.assertIsNone(r.header("Strict-Transport-Security"))
        # a location that only adds a field proxies as its server does
        r = self.get("/peer")
        self.assertRegex(r.body, rb"^127\.0\.0\.1:\d+ \d+\n$")
        self.assertEqual((r.all("X-Site"), r.all("X-Loc")),
                         (["site"], ["peer"]))
        # a field the location sets replaces the upstream's
        r = self.get("/hello")
        self.assertEqual(r.body, b"hello\n")
        self.assertEqual(r.all("Content-Type"), ["text/x-override"])
        # HSTS on TLS, also on what the upstream answers
        r = tls_get(self.tport, "/pid")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Server"), "app")
        self.assertEqual(r.all("Strict-Transport-Security"),
                         ["max-age=3600"])
        self.assertEqual(r.all("X-Site"), ["site"])
        r = tls_get(self.tport, "/static/s.txt")
        self.assertEqual(r.all("Strict-Transport-Security"),
                         ["max-age=3600"])

    # A proxied location's error-page for 502/503/504, with its header
    # lines, answers when the upstream fails (proxy_conf.error).
    def test_error_page_of_a_proxied_location(self):
        up = self.upstream()
        self.more(up)
        r = self.get("/down/x")
        self.assertEqual(r.status, 502)
        self.assertEqual(r.body, b"<p>our 502 page</p>\n")
        self.assertEqual(r.all("X-Site"), ["site"])
