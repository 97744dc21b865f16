"""TLS glue (common/tls.c, sock.c) through testhttpd's TLS listeners:
protocol versions, cipher policy, certificates chosen by SNI, ALPN,
stateless session tickets shared by workers, reloads and hosts, a
certificate change on SIGHUP, and bulk data both ways."""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

from harness import workdir, SANITIZE, SLOW, free_port, wait_for, wait_port
from httpc import (Conn, HttpTest, RssWatch, chunked, make_cert,
                   only_worker, request_bytes, rss_kb, source_bytes)

CONF = """
workers {workers}
pidfile "@PIDFILE@"
listen 127.0.0.1:{port} tls
server-name "tls"
max-body-size 0
tls {{
    certificate "{certs}/ec.crt" key "{certs}/ec.key"
    certificate "{certs}/rsa.crt" key "{certs}/rsa.key"
{tls_extra}
}}
{extra}
"""

MB = 1024 * 1024
GET_PID = b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


class TlsTest(HttpTest):
    @classmethod
    def setUpClass(cls):
        cls.certs = workdir("tls-certs")
        # the first is the default: ECDSA P-256; then RSA, with a wildcard
        make_cert(cls.certs, "ec", "ec", ["ec.test", "www.ec.test"])
        make_cert(cls.certs, "rsa", "rsa", ["rsa.test", "*.wild.test"])

    def httpd(self, workers=2, tls_extra="", extra="", name=None,
              certs=None):
        port = free_port()
        d = self.daemon("testhttpd", CONF.format(
            workers=workers, port=port, certs=certs or self.certs,
            tls_extra=tls_extra, extra=extra), name=name)
        d.start()
        d.wait_workers(workers)
        wait_port("127.0.0.1", port)
        d.port = port
        if name is None:
            self.port = port
        return d

    def s_client(self, *args, data=None, port=None):
        """openssl s_client against the server; (returncode, output).
        With <data>, it is sent and the answer read until the server
        closes; else the client leaves after the handshake."""
        more = ["-ign_eof"] if data else []
        p = subprocess.run(
            ["openssl", "s_client", "-connect",
             f"127.0.0.1:{port or self.port}", *more, *args],
            input=data or b"", stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=15 * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def handshake(self, *args, port=None):
        rc, out = self.s_client(*args, port=port)
        return rc == 0 and "Cipher is (NONE)" not in out and \
            re.search(r"(New|Reused), TLSv1\.[23]", out) is not None, out

    def fetch_pid(self, *args, port=None):
        """GET /pid over s_client: (pid, reused, protocol, output)."""
        rc, out = self.s_client(*args, data=GET_PID, port=port)
        m = re.search(r"(New|Reused), (TLSv1\.\d)", out)
        body = re.search(r"HTTP/1\.1 200 OK\r?\n.*?\r?\n\r?\n(\d+)", out,
                         re.S)
        self.assertIsNotNone(m, out)
        self.assertIsNotNone(body, out)
        return int(body.group(1)), m.group(1) == "Reused", m.group(2), out

    def subject(self, *args):
        rc, out = self.s_client(*args)
        m = re.search(r"^subject=(.*)$", out, re.M)
        self.assertIsNotNone(m, out)
        bits = re.search(r"Server public key is (\d+) bit", out)
        return m.group(1).replace(" ", ""), int(bits.group(1))

    # protocol versions and ciphers

    def test_versions_tls12_tls13_only(self):
        self.httpd()
        for v, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            ok, out = self.handshake(v)
            self.assertTrue(ok, out)
            self.assertIn(f"New, {name}", out)
        # the client is made willing (security level 0), the server says no
        for v in ("-tls1", "-tls1_1"):
            ok, out = self.handshake(v, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertFalse(ok, out)
            # the server's alert 70, not a client that did not try
            self.assertIn("alert protocol version", out)

    def test_client_renegotiation_refused(self):
        """A TLS 1.2 client asking to renegotiate is told no (alert
        no_renegotiation, RFC 5746's attack surface and a CPU lever), and
        the request it sends after is not served; other clients are."""
        self.httpd(workers=1)
        # "R" on its own line: s_client renegotiates (commands are off
        # with -ign_eof), then sends the GET while its input stays open
        p = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}",
             "-tls1_2"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(0.5 * SLOW)
            p.stdin.write(b"R\n")
            p.stdin.flush()
            time.sleep(0.5 * SLOW)
            try:
                p.stdin.write(GET_PID)
                p.stdin.flush()
                time.sleep(0.5 * SLOW)
                p.stdin.close()
            except BrokenPipeError:
                pass            # s_client gave up at the refusal
            out = p.stdout.read().decode(errors="replace")
            p.wait(timeout=15 * SLOW)
        finally:
            p.kill()
            p.wait()
        self.assertIn("RENEGOTIATING", out)
        self.assertIn("no renegotiation", out, out)
        self.assertNotIn("200 OK", out)
        pid, _, proto, _ = self.fetch_pid("-tls1_2")
        self.assertEqual(proto, "TLSv1.2")

    def test_only_forward_secret_aead_ciphers(self):
        self.httpd()
        refused = [
            # ECDSA certificate (the default)
            ("ECDHE-ECDSA-AES128-SHA", None),       # CBC
            ("ECDHE-ECDSA-AES256-SHA384", None),    # CBC
            ("AES128-GCM-SHA256", None),            # AEAD, RSA key exchange
            ("AES256-SHA", None),                   # neither
            # RSA certificate
            ("ECDHE-RSA-AES128-SHA", "rsa.test"),
            ("ECDHE-RSA-AES128-SHA256", "rsa.test"),
            ("DHE-RSA-AES128-GCM-SHA256", "rsa.test"),  # not ECDHE
            ("AES128-GCM-SHA256", "rsa.test"),
        ]
        for cipher, sni in refused:
            args = ["-tls1_2", "-cipher", cipher + ":@SECLEVEL=0"]
            if sni:
                args += ["-servername", sni]
            ok, out = self.handshake(*args)
            self.assertFalse(ok, f"{cipher} accepted:\n{out}")
            # the server refused it (alert 40): the client did offer it
            self.assertIn("alert handshake failure", out)
        accepted = [
            ("ECDHE-ECDSA-AES128-GCM-SHA256", None),
            ("ECDHE-ECDSA-AES256-GCM-SHA384", None),
            ("ECDHE-ECDSA-CHACHA20-POLY1305", None),
            ("ECDHE-RSA-AES128-GCM-SHA256", "rsa.test"),
            ("ECDHE-RSA-CHACHA20-POLY1305", "rsa.test"),
        ]
        for cipher, sni in accepted:
            args = ["-tls1_2", "-cipher", cipher]
            if sni:
                args += ["-servername", sni]
            ok, out = self.handshake(*args)
            self.assertTrue(ok, f"{cipher} refused:\n{out}")
            self.assertIn(f"Cipher is {cipher}", out)
        # what a default client gets: the server's choice, AEAD
        ok, out = self.handshake("-tls1_2")
        self.assertRegex(out, r"Cipher is ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|"
                         r"CHACHA20-POLY1305)")
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                      "TLS_CHACHA20_POLY1305_SHA256"):
            ok, out = self.handshake("-tls1_3", "-ciphersuites", suite)
            self.assertTrue(ok, out)

    # certificates

    def test_sni_picks_certificate(self):
        self.httpd()
        cases = [
            (["-servername", "ec.test"], "CN=ec.test", 256),
            (["-servername", "www.ec.test"], "CN=ec.test", 256),
            (["-servername", "rsa.test"], "CN=rsa.test", 2048),
            (["-servername", "RSA.Test"], "CN=rsa.test", 2048),
            (["-servername", "foo.wild.test"], "CN=rsa.test", 2048),
            # a wildcard covers one label only
            (["-servername", "a.b.wild.test"], "CN=ec.test", 256),
            (["-servername", "wild.test"], "CN=ec.test", 256),
            # unknown name, and no name at all: the default (first)
            (["-servername", "unknown.test"], "CN=ec.test", 256),
            (["-noservername"], "CN=ec.test", 256),
        ]
        for args, subj, bits in cases:
            self.assertEqual(self.subject(*args), (subj, bits), args)
        # the chosen certificate serves requests, for both key types
        for sni in ("rsa.test", "ec.test"):
            ctx = ssl.create_default_context(
                cafile=os.path.join(self.certs, sni.split(".")[0] + ".crt"))
            with socket.create_connection(("127.0.0.1", self.port), 5) as s:
                with ctx.wrap_socket(s, server_hostname=sni) as t:
                    c = Conn(0, sock=t)
                    r = c.request("GET", "/hello", host=sni)
                    self.assertEqual(r.body, b"hello\n")

    def test_alpn_http11(self):
        self.httpd()
        ok, out = self.handshake("-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        ok, out = self.handshake("-alpn", "h2")
        self.assertTrue(ok, out)
        self.assertIn("No ALPN negotiated", out)
        # curl offers h2 first and gets HTTP/1.1
        p = subprocess.run(
            ["curl", "-sS", "-k", "--max-time", str(10 * SLOW),
             "-w", "|%{http_version}|%{http_code}",
             f"https://127.0.0.1:{self.port}/hello"],
            stdout=subprocess.PIPE, text=True, timeout=20 * SLOW)
        self.assertEqual(p.stdout, "hello\n|1.1|200")

    # session resumption

    def resume_across_workers(self, d, proto):
        sess = os.path.join(self.dir, f"sess{proto}")
        a, b = d.wait_workers(2)
        with only_worker([a, b], a):
            pid, reused, v, out = self.fetch_pid(proto, "-sess_out", sess)
        self.assertEqual((pid, reused), (a, False), out)
        with only_worker([a, b], b):
            pid, reused, v, out = self.fetch_pid(proto, "-sess_in", sess)
        self.assertEqual(pid, b, out)
        self.assertTrue(reused, f"not resumed on the other worker:\n{out}")
        return v

    def test_session_resumed_on_another_worker(self):
        d = self.httpd()
        self.assertEqual(self.resume_across_workers(d, "-tls1_3"), "TLSv1.3")
        self.assertEqual(self.resume_across_workers(d, "-tls1_2"), "TLSv1.2")
        # without tickets, nothing to resume
        d2 = self.httpd(tls_extra="    tickets no", name="notickets")
        sess = os.path.join(self.dir, "sess-none")
        self.fetch_pid("-tls1_3", "-sess_out", sess, port=d2.port)
        if os.path.exists(sess):
            pid, reused, v, out = self.fetch_pid("-tls1_3", "-sess_in", sess,
                                                 port=d2.port)
            self.assertFalse(reused, out)

    def test_session_resumed_across_reload(self):
        d = self.httpd()
        sess = os.path.join(self.dir, "sess")
        old = set(d.wait_workers(2))
        pid, reused, v, out = self.fetch_pid("-sess_out", sess)
        self.assertIn(pid, old)
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"testhttpd\[{d.pid}\]: reload done")
        wait_for(lambda: len(d.workers()) == 2 and
                 not (set(d.workers()) & old), 10,
                 what="the old workers to leave")
        pid, reused, v, out = self.fetch_pid("-sess_in", sess)
        self.assertNotIn(pid, old)
        self.assertTrue(reused, out)

    def test_ticket_key_file_shared_by_two_hosts(self):
        key = os.path.join(self.dir, "ticket.key")
        with open(key, "wb") as f:
            f.write(os.urandom(64))
        os.chmod(key, 0o600)
        other = os.path.join(self.dir, "other.key")
        with open(other, "wb") as f:
            f.write(os.urandom(64))
        os.chmod(other, 0o600)
        h1 = self.httpd(tls_extra=f'    ticket-key-file "{key}"',
                        name="host1")
        h2 = self.httpd(tls_extra=f'    ticket-key-file "{key}"',
                        name="host2")
        h3 = self.httpd(tls_extra=f'    ticket-key-file "{other}"',
                        name="host3")
        h4 = self.httpd(name="host4")
        for proto in ("-tls1_3", "-tls1_2"):
            sess = os.path.join(self.dir, "sess" + proto)
            pid, reused, v, out = self.fetch_pid(proto, "-sess_out", sess,
                                                 port=h1.port)
            self.assertFalse(reused)
            pid, reused, v, out = self.fetch_pid(proto, "-sess_in", sess,
                                                 port=h2.port)
            self.assertIn(pid, h2.workers())
            self.assertTrue(reused, f"host2 did not resume host1's "
                            f"{proto} session:\n{out}")
            # another secret, or none: a full handshake
            for h in (h3, h4):
                pid, reused, v, out = self.fetch_pid(proto, "-sess_in", sess,
                                                     port=h.port)
                self.assertFalse(reused, f"{h.name} resumed:\n{out}")
        # the secret file must be private
        os.chmod(key, 0o644)
        bad = self.daemon("testhttpd", CONF.format(
            workers=1, port=free_port(), certs=self.certs,
            tls_extra=f'    ticket-key-file "{key}"', extra=""), name="bad")
        rc, out = bad.run("-n")
        self.assertEqual(rc, 1)
        self.assertIn("must not be readable by group or others", out)

    def test_certificate_change_on_sighup(self):
        certs = os.path.join(self.dir, "certs")
        shutil.copytree(self.certs, certs)
        d = self.httpd(certs=certs)
        self.assertEqual(self.subject("-servername", "rsa.test"),
                         ("CN=rsa.test", 2048))
        # a new RSA certificate (another key, another subject) in place
        make_cert(certs, "rsa", "rsa", ["rsa.test", "*.wild.test"],
                  cn="renewed.rsa.test")
        # not before the reload
        self.assertEqual(self.subject("-servername", "rsa.test"),
                         ("CN=rsa.test", 2048))
        old = set(d.workers())
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"testhttpd\[{d.pid}\]: reload done")
        wait_for(lambda: not (set(d.workers()) & old), 10,
                 what="the old workers to leave")
        self.assertEqual(self.subject("-servername", "rsa.test"),
                         ("CN=renewed.rsa.test", 2048))
        self.assertEqual(self.subject("-servername", "ec.test"),
                         ("CN=ec.test", 256))
        # a broken certificate file: the reload fails, the old one stays
        with open(os.path.join(certs, "rsa.crt"), "w") as f:
            f.write("garbage\n")
        self.syslog.mark()
        d.signal(signal.SIGHUP)
        self.syslog.wait("reload failed, keeping current configuration",
                         tree=d.pid)
        self.assertEqual(self.subject("-servername", "rsa.test"),
                         ("CN=renewed.rsa.test", 2048))

    # data

    def tls_conn(self, port=None, sni="ec.test"):
        ctx = ssl.create_default_context(
            cafile=os.path.join(self.certs, "ec.crt"))
        s = socket.create_connection(("127.0.0.1", port or self.port),
                                     10 * SLOW)
        return Conn(0, sock=ctx.wrap_socket(s, server_hostname=sni),
                    timeout=30)

    def test_bulk_both_ways_over_tls(self):
        self.httpd()
        c = self.tls_conn()
        pid = int(c.request("GET", "/pid").body)
        n = 20 * MB
        data = os.urandom(4 * MB)
        with RssWatch(pid) as w:
            # download, with a reader that stalls first
            c.send(request_bytes("GET", f"/source/{n}"))
            r = c.read_head()
            time.sleep(0.5)
            h = hashlib.sha256()
            left = n
            while left:
                part = c.read_exact(min(left, MB))
                h.update(part)
                left -= len(part)
            self.assertEqual(h.hexdigest(),
                             hashlib.sha256(source_bytes(n)).hexdigest())
            # upload, chunked
            r = c.request("POST", "/sink", [("Transfer-Encoding",
                                             "chunked")], chunked(data * 5))
            self.assertEqual(r.body, f"{20 * MB} {sum(data) * 5}\n".encode())
            # echo, and the connection is still in step afterwards
            r = c.request("POST", "/echo", body=data)
            self.assertEqual(r.body, data)
            self.assertEqual(c.request("GET", "/hello").body, b"hello\n")
        c.close()
        print(f"TLS 20 MB down, 20 MB up, 4 MB echo: worker RSS "
              f"{w.base // 1024} MB, peak +{w.growth_mb:.1f} MB")
        self.assertLess(w.growth_mb, 30)

    def test_records_arriving_together_all_read(self):
        """OpenSSL reads ahead: one read(2) may take several records,
        and the socket is then drained while requests wait in OpenSSL's
        buffer (and with the handshake's last flight, before any request
        is read).  Every one must still be answered, with no new event
        from the kernel to say so."""
        self.httpd(workers=1)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx.minimum_version = ctx.maximum_version = version
            inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inb, outb, server_hostname="ec.test")
            s = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=10 * SLOW)
            self.addCleanup(s.close)

            def pump():
                d = outb.read()
                if d:
                    s.sendall(d)

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
                    # for TLS 1.3 the client's Finished and the first
                    # requests leave together, below
                    inb.write(s.recv(65536))
            n = 5
            for i in range(n):
                # each write is a record of its own
                tls.write(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            pump()
            got = b""
            while got.count(b"hello\n") < n:
                try:
                    got += tls.read(65536)
                except ssl.SSLWantReadError:
                    d = s.recv(65536)
                    self.assertTrue(d, (version, got))
                    inb.write(d)
            self.assertEqual(got.count(b"HTTP/1.1 200 "), n, version)

    def test_plaintext_to_tls_port_and_half_handshakes(self):
        d = self.httpd(workers=1)
        w = d.workers()
        # plain HTTP to a TLS port: refused, no crash
        with Conn(self.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertTrue(c.closed_within(3 * SLOW))
        # a client that stops in the middle of its handshake
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")
        s.close()
        ok, out = self.handshake("-tls1_3")
        self.assertTrue(ok, out)
        self.assertEqual(d.workers(), w)

    def plain_proxy(self, upstream, name):
        port = free_port()
        d = self.daemon("testhttpd", f"""
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
max-body-size 0
upstream {{
{upstream}
}}
""", name=name)
        d.start()
        wait_port("127.0.0.1", port)
        d.port = port
        return d

    def test_proxy_without_tls_name_checks_the_address(self):
        """Verifying with no tls-name, the server's certificate must name
        the address connected to: one from the right CA for other names
        only is refused."""
        b = self.httpd(name="tlsbackend")       # ec.crt: names only
        base = f"server t 127.0.0.1:{b.port}\ntls yes\n"
        p = self.plain_proxy(base + f'tls-ca "{self.certs}/ec.crt"\n'
                             "retries 0", "noname")
        r = Conn(p.port).request("GET", "/hello")
        self.assertEqual(r.status, 502)
        self.syslog.wait("up/t: TLS handshake failed")
        # the same CA file, a certificate that names 127.0.0.1
        certs = os.path.join(self.dir, "ipcerts")
        shutil.copytree(self.certs, certs)
        make_cert(certs, "ec", "ec", ["ec.test", "IP:127.0.0.1"])
        b2 = self.httpd(name="tlsbackend2", certs=certs)
        p2 = self.plain_proxy(f"server t 127.0.0.1:{b2.port}\ntls yes\n"
                              f'tls-ca "{certs}/ec.crt"', "ipname")
        r = Conn(p2.port).request("GET", "/hello")
        self.assertEqual((r.status, r.body), (200, b"hello\n"))

    def test_proxy_to_tls_servers(self):
        b = self.httpd(name="tlsbackend")
        base = f"server t 127.0.0.1:{b.port}\ntls yes\n"
        good = self.plain_proxy(
            base + f'tls-ca "{self.certs}/rsa.crt"\ntls-name rsa.test',
            "good")
        wrong = self.plain_proxy(
            base + f'tls-ca "{self.certs}/rsa.crt"\ntls-name ec.test\n'
            "retries 0", "wrongname")
        noverify = self.plain_proxy(base + "tls-verify no", "noverify")
        # verified, by name, and kept alive: one TLS connection
        peers = set()
        for _ in range(5):
            r = Conn(good.port).request("GET", "/peer")
            self.assertEqual(r.status, 200)
            peers.add(r.body.split()[0])
        self.assertEqual(len(peers), 1, peers)
        # the server's certificate for that name is not for this one
        r = Conn(wrong.port).request("GET", "/hello")
        self.assertEqual(r.status, 502)
        self.syslog.wait("up/t: TLS handshake failed")
        self.assertEqual(Conn(noverify.port).request("GET", "/hello").body,
                         b"hello\n")
        # bodies both ways through the TLS hop, to a reader that stalls
        data = os.urandom(3 * MB)
        with Conn(good.port, timeout=20) as c:
            r = c.request("POST", "/echo", [("Transfer-Encoding",
                                             "chunked")], chunked(data))
            self.assertEqual(r.body, data)
            n = 20 * MB
            c.send(request_bytes("GET", f"/source/{n}"))
            c.read_head()
            time.sleep(0.5)
            self.assertEqual(hashlib.sha256(c.read_exact(n)).digest(),
                             hashlib.sha256(source_bytes(n)).digest())
            self.assertEqual(c.request("GET", "/hello").body, b"hello\n")

    def test_idle_tls_connections_release_buffers(self):
        d = self.httpd(workers=1)
        pid = d.workers()[0]
        conns = []
        try:
            for i in range(300):
                c = self.tls_conn()
                conns.append(c)
                c.send(request_bytes("GET", "/source/30000"))
                if i == 20:
                    for x in conns:
                        x.read_response()
                    before = rss_kb(pid)
            for c in conns[21:]:
                self.assertEqual(len(c.read_response().body), 30000)
            time.sleep(0.1)
            after = rss_kb(pid)
        finally:
            for c in conns:
                c.close()
        per = (after - before) * 1024 / 279
        print(f"279 idle TLS connections: worker RSS "
              f"+{(after - before) / 1024:.1f} MB, {per:.0f} bytes each")
        # OpenSSL's record buffers (about 34 KiB) are given back
        # (ASan's quarantine holds freed memory for a while: slack)
        self.assertLess(after - before, 279 * 24 + (8192 if SANITIZE else 0))

    def test_tls_proxy_says_https(self):
        b = self.daemon("testhttpd", f"""
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{free_port()}
""", name="backend")
        bport = int(re.search(r":(\d+)", open(b.conf_path).read()).group(1))
        b.start()
        wait_port("127.0.0.1", bport)
        self.httpd(extra=f"upstream {{\n    server b 127.0.0.1:{bport}\n}}")
        c = self.tls_conn()
        r = c.request("GET", "/head")
        self.assertIn(b"\r\nX-Forwarded-Proto: https\r\n", r.body)
        # a tunnel with TLS on the client's side
        c.send(request_bytes("GET", "/ws", [("Connection", "upgrade"),
                                            ("Upgrade", "testecho")]))
        self.assertEqual(c.read_response().status, 101)
        data = os.urandom(300000)
        for i in range(0, len(data), 30000):
            c.send(data[i:i + 30000])
            self.assertEqual(c.read_exact(30000), data[i:i + 30000])
        c.close()
