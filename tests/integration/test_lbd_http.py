"""lbd's HTTP frontends and what the servers see: routes by Host and
path, the sticky cookie (set, honoured, forged or tampered ones and ones
naming a down server ignored and replaced, kept across a reload), header
set/add/delete on requests and responses, error-page files, X-Forwarded-
For and -Proto at an edge, PROXY protocol v1 and v2 sent to the servers
(testhttpd's "proxy-from" listener, and the raw bytes), PROXY accepted
from a trusted peer and refused from others, and a WebSocket tunnel."""
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import SLOW, free_port, wait_for, wait_port
from httpc import (BCRYPT_PW, Conn, basic_auth, request_bytes,
                   silent_server, tcp_conns)
from lbdtest import (CHECK, PP2_SIG, LbdTest, RawServer, dead_addr, get,
                     head_fields, kill_now, pp2, raw_closed)

class HttpFrontendTest(LbdTest):
    def raw_server(self):
        """A RawServer, closed when the test ends."""
        r = RawServer()
        self.addCleanup(r.close)
        return r

    def test_routes_by_host_and_path(self):
        web, api, img = self.backends("web", "api", "img")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route host shop.example.org path /api/ backend api
    route host api.example.org backend api
    route host *.img.example.org backend img
    route path /static/ backend img
    backend webs
}}
backend webs {{
    server web {web.addr}
}}
backend api {{
    server api {api.addr}
}}
backend img {{
    server img {img.addr}
}}
""")
        cases = [("www.example.org", "/hello", "web"),
                 ("API.example.org", "/hello", "api"),
                 ("api.example.org:8080", "/hello", "api"),
                 ("api.example.org.", "/hello", "api"),
                 ("a.img.example.org", "/hello", "img"),
                 ("img.example.org", "/hello", "web"),
                 ("www.example.org", "/static/x", "img"),
                 ("www.example.org", "/staticx", "web"),
                 # host and path, both
                 ("shop.example.org", "/api/x", "api"),
                 ("shop.example.org", "/apix", "web"),
                 ("shop.example.org", "/static/x", "img"),
                 ("www.example.org", "/api/x", "web")]
        for host, path, want in cases:
            r = get(self.port, path, host=host)
            self.assertEqual(r.header("Server"), want, (host, path))
        # absolute-form: the target's host and path route
        with Conn(self.port) as c:
            c.send(b"GET http://api.example.org/hello HTTP/1.1\r\n"
                   b"Host: www.example.org\r\n\r\n")
            self.assertEqual(c.read_response().header("Server"), "api")
            c.send(b"GET http://www.example.org/static/a HTTP/1.1\r\n"
                   b"Host: www.example.org\r\n\r\n")
            self.assertEqual(c.read_response().header("Server"), "img")
            c.send(b"GET http://shop.example.org/api/a HTTP/1.1\r\n"
                   b"Host: shop.example.org\r\n\r\n")
            self.assertEqual(c.read_response().header("Server"), "api")
        for rule, msg in (("route path /a/ path /b/ backend api",
                           "route path takes no second path"),
                          ("route host a.test path b/ backend api",
                           'a path route starts with "/"')):
            self.refused(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    {rule}
    backend webs
}}
backend webs {{
    server web {web.addr}
}}
backend api {{
    server api {api.addr}
}}
""", rule, msg)

    def test_route_allow_list_guards_its_path(self):
        """route path /admin/ ... { allow 127.0.0.2 }: others get 403,
        also through encodings, dot segments and an earlier route that
        would take the request; the rest of the site is open."""
        web, adm = self.backends("web", "adm")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route host early.test backend webs
    route path /admin/ backend adm {{
        allow 127.0.0.2 10.0.0.0/8
    }}
    backend webs
}}
backend webs {{
    server web {web.addr}
}}
backend adm {{
    server adm {adm.addr}
}}
""")
        r = get(self.port, "/admin/x", source="127.0.0.2")
        self.assertEqual(r.header("Server"), "adm")
        for path, host in (("/admin/x", "a.test"), ("/%61dmin/x", "a.test"),
                           ("/x/../admin/x", "a.test"),
                           ("/./admin/", "a.test"),
                           ("/admin/x", "early.test"),
                           ("http://a.test/admin/x", "a.test")):
            r = get(self.port, path, host=host, source="127.0.0.3")
            self.assertEqual(r.status, 403, (path, host))
        self.assertEqual(get(self.port, "/%zz", source="127.0.0.3").status,
                         400)
        r = get(self.port, "/hello", source="127.0.0.3")
        self.assertEqual((r.status, r.header("Server")), (200, "web"))
        self.assertEqual(self.metrics(settle=True)(
            "lbd_frontend_denied_total", frontend="www"), 6)

    def test_route_basic_auth(self):
        """route path /admin/ ... { auth-basic REALM FILE }: 401 with the
        realm's challenge (and the frontend's 401 page) without the
        credentials of one of the file's users, whichever spelling of
        the path; the rest of the site is open."""
        web, adm = self.backends("web", "adm")
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write(f"ops:{BCRYPT_PW}\n")
        page = os.path.join(self.dir, "401.html")
        with open(page, "w") as f:
            f.write("<p>who are you?</p>\n")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    error-page 401 {page}
    route path /admin/ backend adm {{
        auth-basic "Admin" "{users}"
    }}
    backend webs
}}
backend webs {{
    server web {web.addr}
}}
backend adm {{
    server adm {adm.addr}
}}
""")
        ok, bad = basic_auth("ops", "pw"), basic_auth("ops", "nope")
        for path in ("/admin/x", "/%61dmin/x", "/x/../admin/x"):
            for hdrs in ([], [bad]):
                with Conn(self.port) as c:
                    r = c.request("GET", path, hdrs)
                    self.assertEqual(
                        (r.status, r.header("WWW-Authenticate"), r.body),
                        (401, 'Basic realm="Admin", charset="UTF-8"',
                         b"<p>who are you?</p>\n"), (path, hdrs))
                    # kept alive, for the browser's second try, which
                    # reaches the server (whose 404 it is)
                    r = c.request("GET", "/admin/x", [ok])
                    self.assertEqual((r.status, r.header("Server")),
                                     (404, "adm"))
        r = get(self.port, "/hello")
        self.assertEqual((r.status, r.header("Server")), (200, "web"))
        # two sets of credentials: the server could read the other one
        for hdrs in ([ok, bad], [bad, ok]):
            r = get(self.port, "/admin/x", hdrs)
            self.assertEqual(r.status, 400, hdrs)
            self.assertIsNone(r.header("Server"))
        # a file lbd cannot use: refused with its line
        with open(users, "a") as f:
            f.write(f"ops:{BCRYPT_PW}\n")
        rc, out = self.lb.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"{users}:2: user ops twice", out)

    # sticky sessions

    def sticky_site(self):
        self.s1, self.s2 = self.backends("s1", "s2")
        self.simple([self.s1, self.s2], backend=f"    cookie SRV\n    {CHECK}")

    def cookie_of(self, r):
        sc = r.all("Set-Cookie")
        self.assertEqual(len(sc), 1, r.head)
        m = re.fullmatch(r"SRV=(\w+)\.([0-9a-f]{16}); Path=/; HttpOnly",
                         sc[0])
        self.assertIsNotNone(m, sc[0])
        return m.group(1), f"SRV={m.group(1)}.{m.group(2)}"

    def test_sticky_cookie_set_and_honoured(self):
        self.sticky_site()
        r = self.get()
        srv, cookie = self.cookie_of(r)
        self.assertEqual(srv, r.header("Server"))
        # honoured against the rotation, on new connections and in the
        # middle of other cookies; not set again
        for c in (cookie, f"a=1; {cookie}; b=2", f"a=1;{cookie}"):
            for _ in range(4):
                r = self.get(headers=[("Cookie", c)])
                self.assertEqual(r.header("Server"), srv, c)
                self.assertEqual(r.all("Set-Cookie"), [])
        # the other server gets a cookie of its own
        other = {"s1": "s2", "s2": "s1"}[srv]
        seen = {}
        for _ in range(4):
            r = self.get()
            s, ck = self.cookie_of(r)
            seen[s] = ck
        self.assertEqual(set(seen), {"s1", "s2"})
        r = self.get(headers=[("Cookie", seen[other])])
        self.assertEqual(r.header("Server"), other)
        # another cookie of the same name does not hide ours
        r = self.get(headers=[("Cookie", "SRVX=1"), ("Cookie", cookie)])
        self.assertEqual(r.header("Server"), srv)

    def test_sticky_cookie_forged_tampered_or_down(self):
        self.sticky_site()
        srv, cookie = self.cookie_of(self.get())
        other = {"s1": "s2", "s2": "s1"}[srv]
        mac = cookie.split(".")[1]
        flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
        bad = [f"SRV={other}.{mac}",            # another server, our MAC
               f"SRV={srv}.{flipped}",          # one digit changed
               f"SRV={other}.0000000000000000",  # forged
               f"SRV={srv}",                    # no MAC
               f"SRV={srv}.{mac}0",             # too long
               f"SRV=nosuch.{mac}"]
        for c in bad:
            got = []
            for _ in range(4):
                r = self.get(headers=[("Cookie", c)])
                self.assertEqual(r.status, 200)
                s, fresh = self.cookie_of(r)    # replaced by a valid one
                self.assertEqual(s, r.header("Server"))
                got.append(s)
            # ignored: the balancer chose, in its rotation
            self.assertEqual(set(got), {"s1", "s2"}, c)
        # the cookie's server goes down: ignored, and replaced
        victim = self.s1 if srv == "s1" else self.s2
        kill_now(victim)
        self.wait_state(f"webs/{srv}", "DOWN")
        for _ in range(3):
            r = self.get(headers=[("Cookie", cookie)])
            self.assertEqual((r.status, r.header("Server")), (200, other))
            s, fresh = self.cookie_of(r)
            self.assertEqual(s, other)
        # and the new one is honoured
        r = self.get(headers=[("Cookie", fresh)])
        self.assertEqual((r.header("Server"), r.all("Set-Cookie")),
                         (other, []))

    def test_sticky_cookie_kept_across_reload(self):
        self.sticky_site()
        srv, cookie = self.cookie_of(self.get())
        old = set(self.lb.workers())
        self.lb.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{self.lb.pid}\]: reload done")
        wait_for(lambda: not (set(self.lb.workers()) & old), 10,
                 what="the old workers to leave")
        for _ in range(4):
            r = self.get(headers=[("Cookie", cookie)])
            self.assertEqual((r.header("Server"), r.all("Set-Cookie")),
                             (srv, []))

    def test_sticky_cookie_key_from_a_file_outlives_the_master(self):
        # load balancers with the same cookie-key-file take each other's
        # cookies: here one lbd, stopped and started again (a new master,
        # which without the file draws a new key)
        key = os.path.join(self.dir, "cookie.key")
        with open(key, "wb") as f:
            f.write(os.urandom(64))
        os.chmod(key, 0o600)
        self.s1, self.s2 = self.backends("s1", "s2")
        self.simple([self.s1, self.s2], backend="    cookie SRV",
                    top=f'cookie-key-file "{key}"')
        srv, cookie = self.cookie_of(self.get())
        self.lb.stop()
        self.lb.start()
        wait_port("127.0.0.1", self.port)
        for _ in range(4):
            r = self.get(headers=[("Cookie", cookie)])
            self.assertEqual((r.header("Server"), r.all("Set-Cookie")),
                             (srv, []))
        # a key others can read is refused, with the reason
        os.chmod(key, 0o644)
        rc, out = self.lb.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertIn("must not be readable by group or others", out)

    # header rules, error pages

    def test_header_rules(self):
        b1, = self.backends("b1")
        self.simple([b1], frontend="""
    header set X-Env prod
    header add X-Added one
    header delete X-Secret
    response-header set Content-Type text/x-lbd
    response-header add X-Frame-Options DENY
    response-header delete Server
""")
        r = self.get("/head", headers=[("X-Env", "test"), ("X-Env", "dev"),
                                       ("X-Secret", "s3cr3t"),
                                       ("x-secret", "again"),
                                       ("X-Added", "zero"),
                                       ("X-Kept", "k")])
        line, h = head_fields(r)
        self.assertEqual(line, "GET /head HTTP/1.1")
        self.assertEqual(h["x-env"], ["prod"])
        self.assertNotIn("x-secret", h)
        self.assertEqual(h["x-added"], ["zero", "one"])
        self.assertEqual(h["x-kept"], ["k"])
        # the response: set replaces the server's field, delete removes
        # it, add adds
        self.assertEqual(r.all("Content-Type"), ["text/x-lbd"])
        self.assertEqual(r.all("X-Frame-Options"), ["DENY"])
        self.assertEqual(r.all("Server"), [])
        self.assertEqual(r.status, 200)

    def test_options_asterisk_goes_to_a_server(self):
        # "OPTIONS *" asks about the server as a whole (RFC 9110 9.3.7);
        # it goes on as it came, as HAProxy sends it
        raw = self.raw_server()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
    server raw {raw.addr}
}}
""")
        with Conn(self.port) as c:
            c.send(b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(len(raw.got), 1)
        self.assertTrue(raw.got[0].startswith(b"OPTIONS * HTTP/1.1\r\n"),
                        raw.got[0])

    def test_client_that_shut_its_side_is_answered(self):
        """A client may send its request and shut its sending side (an
        HTTP/1.0 script, nc -N): lbd answers it, as HAProxy does without
        abortonclose.  (webd lets an upstream go on such a FIN, as nginx
        does; test_webd_proxy.)"""
        self.simple(self.backends("s1"), workers=1)
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/slow/300"))
            c.s.shutdown(socket.SHUT_WR)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"slow\n"))
            self.assertTrue(c.closed_within(2 * SLOW))

    def test_abort_on_close(self):
        """With abort-on-close, a client's FIN before its answer ends
        the request: the server's connection closes at once (so webd
        and appd behind can stop), logged CH, as HAProxy's
        abortonclose."""
        port, seen = silent_server(self)
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    abort-on-close yes
    backend webs
}}
backend webs {{
    server raw 127.0.0.1:{port}
}}
""", workers=1)
        self.syslog.mark()
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/think"))
            time.sleep(0.3)
            c.s.shutdown(socket.SHUT_WR)
            wait_for(lambda: "eof" in seen, 10 * SLOW, what="server EOF")
        self.assertTrue(seen["eof"], seen)
        self.assertLess(seen["eof"], 2.0 * SLOW)
        ln, = self.wait_logs(1)
        self.assertEqual((ln["term"][:2], ln["status"]), ("CH", -1),
                         ln["syslog"])

    def test_header_rules_checked_in_the_conf(self):
        """A rule's name is a token, its value has no line break, and it
        never touches a field lbd writes itself (framing, connection):
        each refused at its line."""
        self.stats = free_port()
        cases = [
            ('header add "X-A\\nInjected" v', 'header "X-A\nInjected": '
             'a field name is a token'),
            ('header add "Bad Name" v', 'header "Bad Name": a field name '
             'is a token'),
            ('header add "" v', 'header "": an empty field name'),
            ('response-header set "X-B:c" v', 'response-header "X-B:c": a '
             'field name is a token'),
            ('header set X-V "a\\nb"', 'header "X-V": control characters '
             'in the value'),
            ('response-header set Content-Length 5', 'response-header '
             '"Content-Length": a field the server writes itself'),
            ('header delete transfer-encoding', 'header '
             '"transfer-encoding": a field the server writes itself'),
            ('header add Connection close', 'header "Connection": a field '
             'the server writes itself'),
        ]
        for i, (rule, want) in enumerate(cases):
            self.refused(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    {rule}
    backend webs
}}
backend webs {{
    server gone {dead_addr()}
}}
""", rule, want, name=f"bad{i}")
        # HTAB is a field value's byte (RFC 9110 5.5)
        d = self.daemon("lbd", self.lbd_conf(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    header set X-Tab "a\tb"
    backend webs
}}
backend webs {{
    server gone {dead_addr()}
}}
"""), name="tab")
        rc, out = d.run("-n")
        self.assertEqual(rc, 0, out)

    def test_head_grown_past_the_limit_refused(self):
        """Header rules can make the head lbd sends outgrow its room.  A
        field left out there (the Content-Length) would make the body a
        second request to the server, one never routed, filtered or
        logged: 431, and nothing goes."""
        raw = self.raw_server()
        big = "v" * 3000
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    header add X-Big1 {big}
    header add X-Big2 {big}
    backend webs
}}
backend webs {{
    server raw {raw.addr}
}}
""")
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        base = len(request_bytes("POST", "/post", [("X-Pad", "")],
                                 body=smuggled)) - len(smuggled)
        for k in (10, 1000):
            r = self.get("/post", method="POST", body=smuggled,
                         headers=[("X-Pad", "p" * (32768 - base - k))])
            self.assertEqual(r.status, 431, k)
        self.assertEqual(raw.got, [])
        # a head with room to grow still goes, with both fields
        r = self.get("/post", method="POST", body=b"fine")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(len(raw.got), 1)
        self.assertIn(b"X-Big2: " + big.encode(), raw.got[0])

    def test_error_page_for_503(self):
        page = b"<!doctype html><title>Down</title><p>Back soon.</p>\n"
        path = os.path.join(self.dir, "503.html")
        with open(path, "wb") as f:
            f.write(page)
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    error-page 503 {path}
    backend webs
}}
backend webs {{
    server gone {dead_addr()}
    {CHECK}
}}
""")
        self.wait_state("webs/gone", "DOWN")
        with Conn(self.port) as c:
            r = c.request("GET", "/hello")
            self.assertEqual((r.status, r.body), (503, page))
            self.assertEqual(r.header("Content-Type"), "text/html")
            self.assertEqual(r.header("Cache-Control"), "no-store")
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_within(2 * SLOW))
        # a HEAD: the same status and length, no body
        with Conn(self.port) as c:
            c.send(request_bytes("HEAD", "/hello"))
            r = c.read_response("HEAD")
            self.assertEqual((r.status, r.header("Content-Length")),
                             (503, str(len(page))))
        # the file is read when the conf is: a missing one is an error
        d = self.daemon("lbd", self.lbd_conf(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    error-page 503 {path}.missing
    backend webs
}}
backend webs {{
    server gone {dead_addr()}
}}
"""), name="bad")
        rc, out = d.run("-n")
        self.assertEqual(rc, 1)
        self.assertIn(f"{path}.missing: No such file or directory", out)

    # what the servers see of the client

    def test_forwarded_for_and_proto_at_an_edge(self):
        b1, = self.backends("b1")
        b2, = self.backends("b2")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route host append.test backend trusting
    backend edge
}}
backend edge {{
    server b1 {b1.addr}
    forwarded yes
}}
backend trusting {{
    server b2 {b2.addr}
    x-forwarded-for append
}}
""")
        forged = [("X-Forwarded-For", "6.6.6.6"),
                  ("X-Forwarded-Proto", "https"),
                  ("x-forwarded-for", "7.7.7.7"),
                  ("Forwarded", "for=6.6.6.6;proto=https")]
        # an edge: what the client says of itself is dropped
        r = get(self.port, "/head", headers=forged, source="127.0.0.2")
        line, h = head_fields(r)
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.2"])
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        self.assertEqual(h["forwarded"], ["for=127.0.0.2;proto=http"])
        r = get(self.port, "/head", source="127.0.0.3")
        line, h = head_fields(r)
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.3"])
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        # behind another proxy (append): the chain, and its proto kept
        r = get(self.port, "/head", headers=forged, source="127.0.0.2",
                host="append.test")
        line, h = head_fields(r)
        self.assertEqual(r.header("Server"), "b2")
        # the lines joined in one, the peer once at its end
        self.assertEqual(h["x-forwarded-for"],
                         ["6.6.6.6, 7.7.7.7, 127.0.0.2"])
        self.assertEqual(h["x-forwarded-proto"], ["https"])
        self.assertEqual(h["forwarded"], ["for=6.6.6.6;proto=https"])

    def test_ipv6_on_both_sides(self):
        """A frontend on [::1], a server on [::1], an allow list of
        IPv6 networks: the server sees the client as ::1 (Forwarded
        quotes it in brackets, RFC 7239 6), and the log line names it."""
        port = free_port()
        b6 = self.daemon("testhttpd", f"""
workers 1
pidfile "@PIDFILE@"
listen [::1]:{port}
server-name "b6"
""", name="b6")
        b6.start()
        wait_port("::1", port)
        self.lbd(f"""
frontend www {{
    listen [::1]:{{port}}
    allow ::1 fd00::/8
    backend v6
}}
backend v6 {{
    server b6 [::1]:{port}
    forwarded yes
}}
""", wait=False)
        wait_port("::1", self.port)
        out = subprocess.run(
            ["curl", "-sS", "-g", "--max-time", "10", "-D", "-",
             f"http://[::1]:{self.port}/head"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=20).stdout.decode()
        head, _, body = out.partition("\r\n\r\n")
        self.assertIn("Server: b6", head, out)
        h = {}
        for ln in body.split("\r\n")[1:]:
            if ": " in ln:
                k, v = ln.split(": ", 1)
                h.setdefault(k.lower(), []).append(v)
        self.assertEqual(h["x-forwarded-for"], ["::1"], body)
        self.assertEqual(h["forwarded"], ['for="[::1]";proto=http'], body)
        ln, = self.wait_logs(1)
        self.assertIn(ln["client"], ("::1", "[::1]"))
        self.assertEqual((ln["backend"], ln["server"], ln["status"]),
                         ("v6", "b6", 200))

    def test_proxy_protocol_v1_v2_to_servers(self):
        pp = "127.0.0.0/8"
        s2, = self.backends("pp2", listen_extra=f" proxy-from {pp}")
        s1, = self.backends("pp1", listen_extra=f" proxy-from {pp}")
        raw2, raw1 = self.raw_server(), self.raw_server()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route host v1.test backend v1
    route host raw2.test backend raw2
    route host raw1.test backend raw1
    backend v2
}}
backend v2 {{
    server pp2 {s2.addr}
    proxy-protocol v2
}}
backend v1 {{
    server pp1 {s1.addr}
    proxy-protocol v1
}}
backend raw2 {{
    server r {raw2.addr}
    proxy-protocol v2
}}
backend raw1 {{
    server r {raw1.addr}
    proxy-protocol v1
}}
""")
        # the server's view of the client: the address from the header,
        # a connection per client (no reuse across clients)
        for host in ("v2.test", "v1.test"):
            for src in ("127.0.0.2", "127.0.0.3", "127.0.0.2"):
                with Conn(self.port, source=src) as c:
                    r = c.request("GET", "/peer", host=host)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body.decode(),
                                     f"{src}:{c.local_port} 1\n", host)
                    # kept alive: the second request on the same server
                    # connection, or a new one with the same header
                    r = c.request("GET", "/peer", host=host)
                    self.assertTrue(r.body.decode().startswith(
                        f"{src}:{c.local_port} "), r.body)
        # the bytes, to the letter
        with Conn(self.port, source="127.0.0.4") as c:
            self.assertEqual(c.request("GET", "/x", host="raw2.test").status,
                             200)
            cport = c.local_port
        got = raw2.got[-1]
        self.assertEqual(got[:16], PP2_SIG + b"\x21\x11\x00\x0c")
        self.assertEqual(got[16:28], socket.inet_aton("127.0.0.4") +
                         socket.inet_aton("127.0.0.1") +
                         struct.pack("!HH", cport, self.port))
        self.assertTrue(got[28:].startswith(b"GET /x HTTP/1.1\r\n"), got)
        with Conn(self.port, source="127.0.0.5") as c:
            self.assertEqual(c.request("GET", "/y", host="raw1.test").status,
                             200)
            cport = c.local_port
        self.assertEqual(raw1.got[-1].split(b"\r\n", 2)[:2],
                         [f"PROXY TCP4 127.0.0.5 127.0.0.1 {cport} "
                          f"{self.port}".encode(), b"GET /y HTTP/1.1"])
        # a connection that began with a client's PROXY header can serve
        # no other client: it is closed, not kept idle (it was, never to
        # be used again, until the server's keep-alive timeout)
        for b in (s1, s2):
            port = int(b.addr.rsplit(":", 1)[1])
            wait_for(lambda: not [x for x in tcp_conns(port)
                                  if x[0] == "ESTAB"], 3,
                     what=f"lbd's connections to {b.name} to close")

    def test_proxy_header_across_families_and_on_checks(self):
        """A client an incoming PROXY header names as IPv6, on an IPv4
        listener: the server's header keeps it (TCP6, the listener's
        address v4-mapped, as HAProxy does) instead of LOCAL, which made
        every such client look like lbd.  And the checks of a backend
        that sends PROXY headers send one too (v2 LOCAL, v1 UNKNOWN): a
        server that requires one refused them all."""
        raw2, raw1 = self.raw_server(), self.raw_server()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    accept-proxy 127.0.0.1
    route host raw1.test backend raw1
    backend raw2
}}
backend raw2 {{
    server r {raw2.addr}
    proxy-protocol v2
    check http path /hc interval 5s
}}
backend raw1 {{
    server r {raw1.addr}
    proxy-protocol v1
    check http path /hc interval 5s
}}
""")
        # the first checks, before any client
        for raw, start in ((raw2, PP2_SIG + b"\x20\x00\x00\x00GET /hc "),
                           (raw1, b"PROXY UNKNOWN\r\nGET /hc ")):
            wait_for(lambda raw=raw: raw.got, 5, what="a check")
            self.assertTrue(raw.got[0].startswith(start), raw.got[0])
        self.wait_state("raw2/r", "UP")
        six = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        hdr = PP2_SIG + b"\x21\x21" + struct.pack(
            "!H16s16sHH", 36, six, socket.inet_pton(socket.AF_INET6,
                                                    "2001:db8::1"),
            40007, 443)
        req = request_bytes("GET", "/six", [("Connection", "close")])
        with Conn(self.port) as c:
            c.send(hdr + req)
            self.assertEqual(c.read_response().status, 200)
        got = [g for g in raw2.got if b"GET /six" in g][0]
        mapped = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
        self.assertEqual(got[:16], PP2_SIG + b"\x21\x21\x00\x24")
        self.assertEqual(got[16:48], six + mapped)
        self.assertEqual(struct.unpack("!HH", got[48:52]),
                         (40007, self.port))
        req = request_bytes("GET", "/six1", [("Connection", "close")],
                            host="raw1.test")
        with Conn(self.port) as c:
            c.send(hdr + req)
            self.assertEqual(c.read_response().status, 200)
        got = [g for g in raw1.got if b"GET /six1" in g][0]
        self.assertTrue(got.startswith(
            f"PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 40007 "
            f"{self.port}\r\n".encode()), got)

    def test_accept_proxy_from_trusted_peers_only(self):
        b1, = self.backends("b1")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    accept-proxy 127.0.0.1
    deny 203.0.113.0/24
    backend webs
}}
backend webs {{
    server b1 {b1.addr}
}}
""")
        req = request_bytes("GET", "/head", [("Connection", "close")])
        # a trusted peer: the header says who the client is (v1 and v2)
        for header, ip, port in (
                (b"PROXY TCP4 198.51.100.7 127.0.0.1 40001 80\r\n",
                 "198.51.100.7", 40001),
                (pp2("198.51.100.9", 40002), "198.51.100.9", 40002)):
            with Conn(self.port) as c:
                c.send(header + req)
                r = c.read_response()
                self.assertEqual(r.status, 200)
                line, h = head_fields(r)
                self.assertEqual(h["x-forwarded-for"], [ip])
            ln = self.wait_logs(1, pred=lambda x, ip=ip: x["client"] == ip)
            self.assertEqual(ln[0]["port"], port)
        # the allow list applies to that client, not to the peer
        self.assertEqual(raw_closed(self.port, b"PROXY TCP4 203.0.113.5 "
                                    b"127.0.0.1 40003 80\r\n" + req), b"")
        # a trusted peer that sends no header: cut off, nothing answered
        self.assertEqual(raw_closed(self.port, req), b"")
        # an untrusted one that sends a header: not believed, cut off
        before = self.metrics(settle=True)("lbd_server_requests_total",
                                backend="webs", server="b1")
        out = raw_closed(self.port, b"PROXY TCP4 198.51.100.8 127.0.0.1 "
                         b"40004 80\r\n" + req, source="127.0.0.2")
        self.assertIsNotNone(out, "not closed")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        out = raw_closed(self.port, pp2("198.51.100.8", 40005) + req,
                         source="127.0.0.2")
        self.assertIsNotNone(out, "not closed")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        ln = self.wait_logs(1, pred=lambda x: x["client"] == "127.0.0.2")[0]
        self.assertEqual((ln["status"], ln["server"], ln["request"]),
                         (400, "<NOSRV>", "PROXY TCP4 198.51.100.8 "
                          "127.0.0.1 40004 80"))
        self.assertEqual(self.metrics(settle=True)(
            "lbd_server_requests_total", backend="webs", server="b1"),
            before)
        # while a request without one from there goes through
        r = get(self.port, "/head", source="127.0.0.2")
        self.assertEqual(head_fields(r)[1]["x-forwarded-for"],
                         ["127.0.0.2"])

    def test_websocket_tunnel_counts_as_a_connection(self):
        """An open tunnel is a connection its server holds: leastconn
        sends new requests elsewhere, and maxconn counts it, until the
        tunnel closes."""
        b1, b2 = self.backends("b1", "b2")
        self.simple([b1, b2], backend="    balance leastconn",
                    opts={"b1": "maxconn 1", "b2": "maxconn 1"})
        c = Conn(self.port)
        self.addCleanup(c.close)
        c.send(request_bytes("GET", "/ws", [("Connection", "Upgrade"),
                                            ("Upgrade", "testecho")]))
        r = c.read_response()
        self.assertEqual(r.status, 101)
        held = r.header("Server")
        other = "b2" if held == "b1" else "b1"
        for _ in range(6):
            self.assertEqual(self.who(), other)
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_server_current_sessions", backend="webs",
                           server=held), 1)
        # the tunnel ends: its server takes requests again
        c.close()
        wait_for(lambda: self.metrics()("lbd_server_current_sessions",
                                         backend="webs", server=held) == 0,
                 5, what="the tunnel's connection given back")
        self.assertEqual({self.who() for _ in range(6)}, {"b1", "b2"})

    def test_websocket_echo(self):
        b1, = self.backends("b1")
        self.simple([b1], backend="    tunnel-timeout 700ms")
        with Conn(self.port) as c:
            c.send(request_bytes("GET", "/ws", [("Connection", "Upgrade"),
                                                ("Upgrade", "testecho")]) +
                   b"early|")
            r = c.read_response()
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("Upgrade"), "testecho")
            self.assertEqual(r.header("Connection").lower(), "upgrade")
            self.assertEqual(c.read_exact(6), b"early|")
            data = os.urandom(512 * 1024)
            got = []
            t = threading.Thread(target=lambda: got.append(
                c.read_exact(len(data))))
            t.start()
            c.s.sendall(data)
            t.join(10 * SLOW)
            self.assertEqual(got and hashlib.sha256(got[0]).digest(),
                             hashlib.sha256(data).digest())
            for _ in range(3):          # traffic keeps it open
                time.sleep(0.3)
                c.send(b"ping")
                self.assertEqual(c.read_exact(4), b"ping")
            # then idle past the backend's tunnel-timeout: closed
            t0 = time.monotonic()
            self.assertTrue(c.closed_within(3 * SLOW))
            self.assertGreater(time.monotonic() - t0, 0.5)
        ln = self.wait_logs(1, pred=lambda x: "/ws" in x["request"])[0]
        self.assertEqual((ln["status"], ln["server"]), (101, "b1"))
        # an upgrade the server refuses is an ordinary answer
        self.assertEqual(self.get("/ws").status, 426)
