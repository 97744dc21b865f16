"""TLS termination in lbd, checked with curl and openssl s_client: the
certificate chosen by SNI among two (ECDSA and RSA), ALPN http/1.1,
TLS 1.0 and 1.1 refused, a session resumed on the other worker (the
ticket keys shared by the workers), what the server behind sees
(X-Forwarded-Proto https), the "~" of the log line, the Secure sticky
cookie; and the http -> https redirect (301 by default, a configured
code; the Location keeps the host, without its port, and the path)."""
import os
import re
import subprocess

from harness import workdir, SLOW, free_port, wait_for, wait_port
from httpc import Conn, only_worker, scripted_server
from lbdtest import LbdTest, get

HELLO = (b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")


class TlsTest(LbdTest):
    @classmethod
    def setUpClass(cls):
        from httpc import make_cert
        cls.certs = workdir("lbd-certs")
        # the first is the default
        make_cert(cls.certs, "a", "ec", ["a.test", "www.a.test"])
        make_cert(cls.certs, "b", "rsa", ["b.test"])

    def site(self, extra_backend=""):
        self.b1, = self.backends("b1")
        self.tls_port = free_port()
        self.r308 = free_port()
        c = self.certs
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    listen 127.0.0.1:{self.tls_port} tls
    tls {{
        certificate {c}/a.crt key {c}/a.key
        certificate {c}/b.crt key {c}/b.key
    }}
    redirect https
    backend webs
}}
frontend moved {{
    listen 127.0.0.1:{self.r308}
    redirect https code 308
}}
backend webs {{
    server b1 {self.b1.addr}
{extra_backend}
}}
""")
        wait_port("127.0.0.1", self.tls_port)

    def s_client(self, *args, data=None):
        more = ["-ign_eof"] if data else []
        p = subprocess.run(
            ["openssl", "s_client", "-connect",
             f"127.0.0.1:{self.tls_port}", *more, *args],
            input=data or b"", stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=15 * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def curl(self, name, path, cafile):
        p = subprocess.run(
            ["curl", "-sS", "--max-time", str(10 * SLOW), "--cacert",
             os.path.join(self.certs, cafile), "--resolve",
             f"{name}:{self.tls_port}:127.0.0.1", "-D", "-",
             "-w", "|%{http_version}|%{http_code}",
             f"https://{name}:{self.tls_port}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=20 * SLOW)
        return p.returncode, p.stdout

    def test_curl_sni_and_what_the_server_sees(self):
        self.site(extra_backend="    cookie SRV")
        # curl verifies the certificate against the one it expects: the
        # name picks it
        rc, out = self.curl("a.test", "/head", "a.crt")
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.endswith("|1.1|200"), out)
        # (text mode: the CRLFs read as newlines)
        self.assertIn("\nX-Forwarded-Proto: https\n", out)
        self.assertIn("\nX-Forwarded-For: 127.0.0.1\n", out)
        # the sticky cookie is Secure on a TLS listener
        self.assertRegex(out, r"(?i)set-cookie: SRV=b1\.[0-9a-f]{16}; "
                              r"Path=/; HttpOnly; Secure\n")
        rc, out = self.curl("b.test", "/hello", "b.crt")
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.endswith("hello\n|1.1|200"), out)
        # the wrong one does not verify
        rc, out = self.curl("b.test", "/hello", "a.crt")
        self.assertNotEqual(rc, 0, out)
        ln = self.wait_logs(2)[0]
        self.assertEqual((ln["frontend"], ln["tls"], ln["backend"],
                          ln["server"]), ("www", "~", "webs", "b1"))

    def test_s_client_sni_alpn_versions(self):
        self.site()
        for args, cn, bits in ((["-servername", "a.test"], "a.test", 256),
                               (["-servername", "b.test"], "b.test", 2048),
                               (["-servername", "www.a.test"], "a.test",
                                256),
                               (["-noservername"], "a.test", 256),
                               (["-servername", "other.test"], "a.test",
                                256)):
            rc, out = self.s_client(*args)
            m = re.search(r"^subject=.*CN\s*=\s*(\S+)$", out, re.M)
            self.assertIsNotNone(m, out)
            self.assertEqual(m.group(1), cn, args)
            self.assertIn(f"Server public key is {bits} bit", out)
        # ALPN: http/1.1, and nothing else
        rc, out = self.s_client("-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        rc, out = self.s_client("-alpn", "h2")
        self.assertIn("No ALPN negotiated", out)
        # TLS 1.2 and 1.3; the client made willing, 1.0 and 1.1 refused
        for v, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = self.s_client(v)
            self.assertEqual(rc, 0, out)
            self.assertIn(f"New, {name}", out)
        for v in ("-tls1", "-tls1_1"):
            rc, out = self.s_client(v, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("alert protocol version", out)
        # a request over it
        rc, out = self.s_client("-servername", "a.test", data=HELLO)
        self.assertRegex(out, r"HTTP/1\.1 200 OK\r?\n")
        self.assertIn("hello", out)

    def test_session_resumed_on_another_worker(self):
        self.site()
        a, b = self.lb.wait_workers(2)
        for proto in ("-tls1_3", "-tls1_2"):
            sess = os.path.join(self.dir, "sess" + proto)
            with only_worker([a, b], a):
                rc, out = self.s_client(proto, "-sess_out", sess,
                                        data=HELLO)
            self.assertRegex(out, r"New, TLSv1\.[23]")
            self.assertIn("hello", out)
            with only_worker([a, b], b):
                rc, out = self.s_client(proto, "-sess_in", sess, data=HELLO)
            self.assertRegex(out, r"Reused, TLSv1\.[23]",
                             f"not resumed on the other worker:\n{out}")
            self.assertIn("hello", out)
        # both workers did their part
        logs = self.wait_logs(4)
        self.assertEqual(len({ln["syslog"].split("lbd[")[1].split("]")[0]
                              for ln in logs}), 2)

    def test_redirect_to_https(self):
        self.site()
        with Conn(self.port) as c:
            r = c.request("GET", "/a/b?x=1&y=%20", host="www.a.test:8080")
            self.assertEqual(r.status, 301)
            # the host without its port (https is 443), the target as is
            self.assertEqual(r.header("Location"),
                             "https://www.a.test/a/b?x=1&y=%20")
            # the connection stays usable
            r = c.request("POST", "/form", host="a.test", body="k=v")
            self.assertEqual((r.status, r.header("Location")),
                             (301, "https://a.test/form"))
            # absolute-form: its host and path
            c.send(b"GET http://b.test:81/p?q HTTP/1.1\r\nHost: b.test:81"
                   b"\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.header("Location")),
                             (301, "https://b.test/p?q"))
            # an absolute-form target with a query and no path: "/?q"
            c.send(b"GET http://x.test?q=/evil HTTP/1.1\r\nHost: x.test"
                   b"\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.header("Location")),
                             (301, "https://x.test/?q=/evil"))
            c.send(b"GET http://x.test HTTP/1.1\r\nHost: x.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.header("Location")),
                             (301, "https://x.test/"))
        # OPTIONS * has no URI to move to
        with Conn(self.port) as c:
            c.send(b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.header("Location")), (400, None))
        # without a Host there is nowhere to go
        with Conn(self.port) as c:
            c.send(b"GET / HTTP/1.0\r\n\r\n")
            self.assertEqual(c.read_response().status, 400)
        # a configured code
        r = get(self.r308, "/x/y", host="a.test")
        self.assertEqual((r.status, r.header("Location")),
                         (308, "https://a.test/x/y"))
        # none of this went to the server
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="b1"), 0)
        lines = self.wait_logs(8)
        self.assertEqual({(ln["backend"], ln["server"], ln["term"][:2])
                          for ln in lines},
                         {("www", "<NOSRV>", "LR"),
                          ("moved", "<NOSRV>", "LR")})

    def test_tunnel_end_without_close_notify_keeps_the_bytes(self):
        # a TLS client closes its tunnel without close_notify (as most
        # do) while lbd still holds bytes for a slow server: they must
        # all arrive, then the end
        import socket
        import ssl
        import time
        from webdtest import client_tls
        got = {}

        def server(s, buf):
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: raw\r\nConnection: upgrade\r\n\r\n")
            time.sleep(1.0)      # slow: lbd holds what comes
            n = len(buf.split(b"\r\n\r\n", 1)[1])
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        got["end"] = "eof"
                        break
                    n += len(d)
            except OSError as e:
                got["end"] = str(e)
            got["n"] = n
        port = scripted_server(self, server, rcvbuf=65536)
        self.tls_port = free_port()
        c = self.certs
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{self.tls_port} tls
    tls {{
        certificate {c}/a.crt key {c}/a.key
    }}
    backend raw
}}
backend raw {{
    server raw 127.0.0.1:{port}
}}
""", wait=False)
        wait_port("127.0.0.1", self.tls_port)
        n = 16 * 1024 * 1024
        raw = socket.create_connection(("127.0.0.1", self.tls_port),
                                       timeout=10 * SLOW)
        s = client_tls().wrap_socket(raw, server_hostname="a.test")
        s.sendall(b"GET /up HTTP/1.1\r\nHost: a.test\r\n"
                  b"Connection: upgrade\r\nUpgrade: raw\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        s.sendall(b"x" * n)
        # close the TCP connection under TLS: no close_notify
        under = socket.fromfd(s.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        under.shutdown(socket.SHUT_WR)
        under.close()
        s.close()
        wait_for(lambda: "n" in got, 15, what="the server's end")
        self.assertEqual(got.get("n"), n, got)
        self.assertEqual(got.get("end"), "eof", got)

    def test_redirect_only_frontend_with_tls_listener_refused(self):
        # redirect https and no backend: its tls listener would answer
        # every request 503; the conf says so instead
        c = self.certs
        self.stats = free_port()
        d = self.daemon("lbd", self.lbd_conf(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    listen 127.0.0.1:{free_port()} tls
    tls {{
        certificate {c}/a.crt key {c}/a.key
    }}
    redirect https
}}
"""), name="bad")
        rc, out = d.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"bad\.conf:\d+: frontend www: a tls listener "
                              r"needs a backend")

    def test_redirect_except_lets_acme_challenges_through(self):
        """An ACME HTTP-01 challenge is fetched over plain HTTP: with
        "except PREFIX", PREFIX and a token reach the backend and the
        rest is still redirected; no encoding, dot segment, ";" or
        second slash rides the exception (servers differ in how they
        read those: a review sent /.well-known/acme-%63hallenge/x past a
        route on the prefix to the default backend)."""
        b1, = self.backends("b1")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    redirect https except "/.well-known/acme-challenge/"
    backend webs
}}
backend webs {{
    server b1 {b1.addr}
}}
""")
        for path in ("/.well-known/acme-challenge/tok3n",
                     "/.well-known/acme-challenge/tok3n?x=1",
                     "/.well-known/acme-challenge/Ab-9_z",
                     "http://a.test/.well-known/acme-challenge/t"):
            r = get(self.port, path, host="a.test")
            self.assertEqual((r.status, r.header("Server"),
                              r.header("Location")), (404, "b1", None),
                             path)
        for path in ("/", "/.well-known/acme-challenge",
                     "/.well-known/acme-challenge/../admin",
                     "/.well-known/acme-challenge/%2e%2e/admin",
                     "/.well-known/acme-challenge/./x",
                     "/.well-known/acme-%63hallenge/tok3n",
                     "//.well-known/acme-challenge/tok3n",
                     "/.well-known/acme-challenge/..;/admin",
                     "/.well-known/acme-challenge/a/b",
                     "/.well-known/acme-challenge/a.b",
                     "/x/.well-known/acme-challenge/t"):
            r = get(self.port, path, host="a.test")
            self.assertEqual((r.status, r.header("Location")),
                             (301, "https://a.test" + path), path)
        for conf, msg in (
                ('redirect https except "/x/"\n',
                 "frontend www: redirect https except needs a backend"),
                ('redirect https except "x/"\n    backend webs\n',
                 "redirect https except: a path prefix starts and ends "
                 'with "/"'),
                ('redirect https except "/x"\n    backend webs\n',
                 "redirect https except: a path prefix starts and ends "
                 'with "/"')):
            self.refused(f"""
frontend www {{
    listen 127.0.0.1:{free_port()}
    {conf}}}
backend webs {{
    server b1 {b1.addr}
}}
""", conf.split("\n")[0], msg)

    def test_rsa_and_ecdsa_certificates_for_one_name(self):
        # an RSA and an ECDSA certificate for the same names: each client
        # gets the one its signature algorithms take (the second was
        # never used: the first with a matching name won)
        from httpc import make_cert
        d = self.certs
        make_cert(d, "dual-ec", "ec", ["dual.test"])
        make_cert(d, "dual-rsa", "rsa", ["dual.test"])
        b1, = self.backends("b1")
        self.tls_port = free_port()
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{self.tls_port} tls
    tls {{
        certificate {d}/dual-ec.crt key {d}/dual-ec.key
        certificate {d}/dual-rsa.crt key {d}/dual-rsa.key
    }}
    backend webs
}}
backend webs {{
    server b1 {b1.addr}
}}
""", wait=False)
        wait_port("127.0.0.1", self.tls_port)
        for sigalgs, bits in (("ECDSA+SHA256", "256"),
                              ("rsa_pss_rsae_sha256:RSA+SHA256", "2048")):
            _, out = self.s_client("-servername", "dual.test", "-sigalgs",
                                   sigalgs, data=HELLO)
            self.assertIn(f"Server public key is {bits} bit", out)
            self.assertRegex(out, r"HTTP/1\.1 200 OK\r?\n")

