"""appd's HTTP/1.1 side (common/http.h's parser, blocking workers):
keep-alive and pipelining, bodies (Content-Length, chunked, 100-continue,
413), malformed requests, HTTP/1.0, a kept connection that does not
starve a new client, X-Forwarded-For from trusted proxies only, the
response fields a module may set, the JSON writer's escaping, and webd
in front over a unix socket."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from appdtest import (AppdTest, Conn, get, raw_exchange,  # noqa: E402
                           wait_for)


def parse_all(data):
    """Split bytes holding several responses with Content-Length."""
    out = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = dict((k.lower(), v.strip()) for k, v in
                    (ln.split(":", 1) for ln in lines[1:]))
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


class HttpTest(AppdTest):
    def setUp(self):
        super().setUp()
        self.a = self.appd(extra="pool static\nworkers 1\n"
                           "max-body-size 64k\nmax-header-size 2k\n"
                           "keepalive-timeout 30s\n"
                           "trusted-proxy 127.0.0.1 10.0.0.0/8\n").start()
        self.port = self.a.port

    def test_keepalive_and_pipelining(self):
        with Conn(self.port) as c:
            p1 = c.request("GET", "/t/pid").body
            p2 = c.request("GET", "/t/pid").body
            self.assertEqual(p1, p2)
        data = raw_exchange(self.port, b"GET /t/hello HTTP/1.1\r\nHost: a\r\n"
                            b"\r\nGET /t/pid HTTP/1.1\r\nHost: a\r\n\r\n"
                            b"GET /t/echo?a=3 HTTP/1.1\r\nHost: a\r\n"
                            b"Connection: close\r\n\r\n")
        rs = parse_all(data)
        self.assertEqual([r[0] for r in rs], [200, 200, 200])
        self.assertEqual(rs[0][2], b"hello, world\n")
        self.assertEqual(rs[1][2], p1)
        self.assertEqual(json.loads(rs[2][2])["a"], "3")
        self.assertEqual(rs[2][1]["connection"], "close")

    def test_bodies(self):
        r = get(self.port, "/t/echo", method="POST", body=b"x" * 1000)
        self.assertEqual(len(json.loads(r.body)["body"]), 1000)
        # chunked, with an extension and a trailer
        body = (b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n")
        data = raw_exchange(self.port, b"POST /t/echo HTTP/1.1\r\nHost: a\r\n"
                            b"Transfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n" + body)
        st, _, b = parse_all(data)[0]
        self.assertEqual((st, json.loads(b)["body"]), (200, "hello world"))
        # Expect: 100-continue
        with Conn(self.port) as c:
            c.send(b"POST /t/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3"
                   b"\r\nExpect: 100-continue\r\n\r\n")
            r = c.read_response(interim=True)
            self.assertEqual(r.status, 100)
            c.send(b"abc")
            r = c.read_response()
            self.assertEqual(json.loads(r.body)["body"], "abc")
        # too large: by Content-Length, and chunked
        r = get(self.port, "/t/echo", method="POST", body=b"x" * 70000)
        self.assertEqual(r.status, 413)
        self.assertEqual(r.header("Connection"), "close")
        big = b"%x\r\n%s\r\n0\r\n\r\n" % (70000, b"y" * 70000)
        data = raw_exchange(self.port, b"POST /t/echo HTTP/1.1\r\nHost: a\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n" + big)
        self.assertEqual(parse_all(data)[0][0], 413)

    def test_malformed_and_limits(self):
        cases = [
            (b"GET /t/hello HTTP/1.1\r\n\r\n", 400),           # no Host
            (b"GET /t/hello HTTP/1.1\r\nHost: a\r\nBad Field: x\r\n\r\n",
             400),
            (b"GET /t/hello HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
             b"Content-Length: 2\r\n\r\nx", 400),
            (b"GET /t/hello HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 4000 +
             b"\r\n\r\n", 431),
        ]
        for req, status in cases:
            rs = parse_all(raw_exchange(self.port, req))
            self.assertEqual(rs[0][0], status, req[:60])
            self.assertEqual(rs[0][1]["connection"], "close")
        # a target that does not decode: refused, the connection stays
        self.assertEqual(get(self.port, "/t/%00").status, 400)
        self.assertEqual(get(self.port, "/nowhere").status, 404)
        self.assertEqual(get(self.port, "/t/status?code=418").status, 418)
        r = get(self.port, "/t/status?code=418")
        self.assertIn("error", json.loads(r.body))
        r = get(self.port, "/t/hello", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(r.header("Content-Length"), "13")
        # HTTP/1.0: closed after, unless keep-alive is asked for
        d = raw_exchange(self.port, b"GET /t/hello HTTP/1.0\r\n\r\n")
        self.assertIn(b"Connection: close", d)
        with Conn(self.port) as c:
            r = c.request("GET", "/t/pid", [("Connection", "keep-alive")],
                          version="HTTP/1.0")
            self.assertEqual(r.header("Connection"), "keep-alive")
            r2 = c.request("GET", "/t/pid", version="HTTP/1.0")
            self.assertEqual(r.body, r2.body)

    def test_kept_connection_does_not_starve_a_new_client(self):
        # one worker, idle on a kept connection: a new client is served
        with Conn(self.port) as a:
            pa = a.request("GET", "/t/pid").body
            t0 = time.monotonic()
            with Conn(self.port) as b:
                r = b.request("GET", "/t/pid")
                self.assertEqual(r.body, pa)
                self.assertLess(time.monotonic() - t0, 1.0)
                # the idle one was let go; the new one is kept
                self.assertTrue(a.closed_within(2))
                self.assertEqual(b.request("GET", "/t/pid").body, pa)

    def test_busy_kept_connection_shares_the_worker(self):
        # one worker and a client that keeps it busy on its connection:
        # a queued client is served in turn, the busy one told to close
        with Conn(self.port) as a:
            a.request("GET", "/t/hello")
            a.send(b"GET /t/sleep?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.1)
            with Conn(self.port) as b:
                b.send(b"GET /t/pid HTTP/1.1\r\nHost: a\r\n\r\n")
                r = a.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("Connection"), "close")
                self.assertEqual(b.read_response().status, 200)

    def test_forwarded_for_from_trusted_proxies_only(self):
        def client(hdrs, port=None):
            r = get(port or self.port, "/t/echo", headers=hdrs)
            return json.loads(r.body)["client"]
        self.assertEqual(client([]), "127.0.0.1")
        self.assertEqual(client([("X-Forwarded-For", "198.51.100.7")]),
                         "198.51.100.7")
        # the last address that is not a trusted proxy
        self.assertEqual(client([("X-Forwarded-For",
                                  "203.0.113.1, 198.51.100.7, 10.1.2.3")]),
                         "198.51.100.7")
        self.assertEqual(client([("X-Forwarded-For", "203.0.113.1"),
                                 ("X-Forwarded-For", "10.0.0.1")]),
                         "203.0.113.1")
        self.assertEqual(client([("X-Forwarded-For", "10.0.0.1")]),
                         "10.0.0.1")
        b = self.appd(name="appd2", extra="pool static\nworkers 1\n").start()
        self.assertEqual(client([("X-Forwarded-For", "198.51.100.7")],
                                b.port), "127.0.0.1")

    def test_response_fields(self):
        r = get(self.port, "/t/headers")
        self.assertEqual(r.status, 203)
        self.assertEqual(json.loads(r.body), {"good": 0, "crlf": -1,
                                              "length": -1, "name": -1,
                                              "cookie": 0})
        self.assertEqual(r.header("X-Good"), "yes")
        self.assertIsNone(r.header("Injected"))
        self.assertEqual(r.header("Set-Cookie"), "k=v; Path=/")
        self.assertEqual(r.all("Content-Length"), [str(len(r.body))])

    def test_json_escaping(self):
        raw = (b'"quoted" back\\slash\n\t\r\x01\x1f\x7f caf\xc3\xa9 '
               b'\xff \xc0\xaf \xed\xa0\x80 \xe2\x82 \xf4\x90\x80\x80 '
               b'\xf0\x9f\x98\x80 \xe2\x80\xa8 end\xe2')
        r = get(self.port, "/t/json", method="POST", body=raw)
        self.assertEqual(r.header("Content-Type"), "application/json")
        text = r.body.decode("utf-8")            # valid UTF-8 throughout
        for c in text:
            self.assertFalse(ord(c) < 0x20 or ord(c) == 0x7f, repr(c))
        self.assertIn('\\"quoted\\" back\\\\slash\\n\\t\\r\\u0001\\u001f'
                      '\\u007f', text)
        self.assertIn("\\u2028", text)
        doc = json.loads(text)
        self.assertEqual(doc["s"], raw.decode("utf-8", "replace"))
        self.assertEqual(doc["s"].count("\ufffd"), raw.decode(
            "utf-8", "replace").count("\ufffd"))
        self.assertEqual((doc["n"], doc["x"], doc["t"]), (-42, 0.5,
                                                          [True, None]))
        # and the reader: escapes and surrogate pairs decoded
        r = get(self.port, "/t/echo", method="POST",
                body=b'{"j": "a\\u00e9\\ud83d\\ude00\\"", "k": [1, {"x": 2}]}',
                headers=[("Content-Type", "application/json")])
        d = json.loads(r.body)
        self.assertTrue(d["json_body"])
        self.assertEqual(d["json"], "a\u00e9\U0001F600\"")
        r = get(self.port, "/t/echo", method="POST", body=b'{"j": 1,}')
        self.assertFalse(json.loads(r.body)["json_body"])

    def test_webd_in_front_over_a_unix_socket(self):
        b = self.appd(name="appd2", unix=True,
                      extra="pool static\nworkers 2\n"
                      "trusted-proxy unix\n").start()
        self.assertEqual(oct(os.stat(b.sock).st_mode & 0o777), "0o666")
        w = self.webd(b).start()
        for _ in range(20):
            r = w.get("/t/echo?a=1", headers=[("Cookie", "c=yum")])
            self.assertEqual(r.status, 200)
        d = json.loads(r.body)
        self.assertEqual((d["a"], d["cookie"], d["client"]),
                         ("1", "yum", "127.0.0.1"))
        s = socket.socket(socket.AF_UNIX)
        s.connect(b.sock)
        with Conn(0, sock=s) as c:
            self.assertEqual(c.request("GET", "/ping").body, b"pong\n")
        wait_for(lambda: b.status()["accepted_conn"] >= 2, 5,
                 what="accepted connections counted")
