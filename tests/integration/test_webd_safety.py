"""webd's safety (webd/server_file.c's design, on common/http_target.c):
no request leaves the document root -- dot segments raw and encoded in
every form, encoded slashes and backslashes, NUL, overlong UTF-8, double
encoding, absolute-form targets, ";" tricks, over-long paths, symlinks
out of the root -- with and without "symlinks yes"; dotfiles stay
hidden; error pages never echo the request target.  Raw requests over
sockets, so that the bytes on the wire are exactly the attack; a canary
file beside the root must never appear in any answer."""
import os
import secrets

from webdtest import WebdClass, raw, raw_request, write

CANARY = b"CANARY-" + secrets.token_hex(8).encode()
OUTSIDE = b"OUTSIDE-" + secrets.token_hex(8).encode()
PASSWD = b"root:x:0:0"

# Request targets, byte for byte, that try to reach ../canary.txt,
# ../outside/secret.txt or /etc/passwd from the document root.
ATTACKS = [
    # dot segments, raw
    b"/../canary.txt",
    b"/../../../../../../etc/passwd",
    b"/./../canary.txt",
    b"/sub/../../canary.txt",
    b"/sub/./../../canary.txt",
    b"//../canary.txt",
    b"/sub//..//..//canary.txt",
    b"/./././../canary.txt",
    b"/../outside/secret.txt",
    # dot segments, percent-encoded
    b"/%2e%2e/canary.txt",
    b"/%2E%2E/canary.txt",
    b"/.%2e/canary.txt",
    b"/%2e./canary.txt",
    b"/sub/%2e%2e/%2e%2e/canary.txt",
    b"/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/.%2e/.%2e/.%2e/etc/passwd",
    # encoded slashes and backslashes
    b"/..%2fcanary.txt",
    b"/..%2Fcanary.txt",
    b"/%2e%2e%2fcanary.txt",
    b"/..%2f..%2f..%2fetc%2fpasswd",
    b"/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/..%5ccanary.txt",
    b"/..%5Ccanary.txt",
    b"/%5c..%5ccanary.txt",
    b"/%2e%2e%5c%2e%2e%5ccanary.txt",
    b"/..\\canary.txt",
    b"/..\\..\\..\\etc\\passwd",
    b"/sub\\..\\..\\canary.txt",
    # NUL
    b"/..%00/canary.txt",
    b"/index.html%00/../../canary.txt",
    b"/.%00./canary.txt",
    b"/../canary.txt%00.html",
    # overlong and look-alike UTF-8
    b"/%c0%ae%c0%ae/canary.txt",
    b"/%c0%2e%c0%2e/canary.txt",
    b"/..%c0%afcanary.txt",
    b"/..%c0%af..%c0%afetc/passwd",
    b"/..%c1%9ccanary.txt",
    b"/%e0%80%ae%e0%80%ae/canary.txt",
    b"/%f0%80%80%ae%f0%80%80%ae/canary.txt",
    b"/%ef%bc%8e%ef%bc%8e/canary.txt",
    b"/..%e2%88%95canary.txt",
    b"/..%u2215canary.txt",
    b"/%u002e%u002e/canary.txt",
    # double encoding
    b"/%252e%252e/canary.txt",
    b"/%252e%252e%252fcanary.txt",
    b"/..%252fcanary.txt",
    b"/%25%32%65%25%32%65/canary.txt",
    # absolute-form
    b"http://safe.test/../canary.txt",
    b"http://safe.test/%2e%2e/canary.txt",
    b"http://safe.test/..%2fcanary.txt",
    b"http://safe.test/../../etc/passwd",
    b"file:///etc/passwd",
    b"http://safe.test..//canary.txt",
    # ";" and other tricks
    b"/..;/canary.txt",
    b"/;/../canary.txt",
    b"/.;/../canary.txt",
    b"/sub;/../../canary.txt",
    b"/....//canary.txt",
    b"/..../canary.txt",
    b"/.../canary.txt",
    b"/..%20/canary.txt",
    b"/.. /canary.txt",
    b"../canary.txt",
    b"canary.txt",
    # links out of the root
    b"/passwd",
    b"/outfile",
    b"/outdir/secret.txt",
    b"/outdir/",
    b"/outdir/../canary.txt",
    b"/sub/up/../canary.txt",
    b"/proc/self/root/etc/passwd",
    b"/proc/self/cwd/canary.txt",
    # over-long paths
    b"/" + b"../" * 3000 + b"canary.txt",
    b"/" + b"a/" * 2100 + b"../" * 2101 + b"canary.txt",
    b"/" + b"%2e%2e/" * 9000 + b"canary.txt",
    b"/" + b"x" * 70000 + b"/../../canary.txt",
]


class SafetyTest(WebdClass):
    @classmethod
    def make_tree(cls):
        d = cls.dir
        r = os.path.join(d, "root")
        write(f"{d}/canary.txt", CANARY)
        write(f"{d}/outside/secret.txt", OUTSIDE)
        write(f"{r}/index.html", b"<p>index</p>\n")
        write(f"{r}/sub/page.html", b"<p>page</p>\n")
        write(f"{r}/file.txt", b"file\n")
        write(f"{r}/.htpasswd", b"admin:secret\n")
        write(f"{r}/.git/config", b"[core]\n")
        os.makedirs(f"{r}/noindex")
        os.symlink("/etc/passwd", f"{r}/passwd")
        os.symlink("../outside", f"{r}/outdir")
        os.symlink("../canary.txt", f"{r}/outfile")
        os.symlink("index.html", f"{r}/inlink")
        os.symlink(f"{r}/index.html", f"{r}/absin")
        os.symlink("..", f"{r}/sub/up")
        os.symlink("loop", f"{r}/loop")
        os.symlink("/proc", f"{r}/proc")

    @classmethod
    def conf(cls):
        return f"""
max-request-line 64k
max-header-size 128k
server "safe" default {{
	listen 127.0.0.1:{cls.port}
	name "safe.test"
	root "@DIR@/root"
}}
server "links" {{
	listen 127.0.0.1:{cls.port}
	name "links.test"
	root "@DIR@/root"
	symlinks yes
}}
"""

    def assertNoLeak(self, data, what):
        for secret in (CANARY, OUTSIDE, PASSWD, b"admin:secret"):
            self.assertNotIn(secret, data, f"{what!r} leaked {secret!r}")

    def attack(self, host, attacks):
        statuses = {}
        for t in attacks:
            r, data = raw_request(self.port, t, host=host)
            self.assertNoLeak(data, t[:120])
            self.assertIsNotNone(r, f"no answer to {t[:120]!r}: {data!r}")
            self.assertIn(r.status, (400, 403, 404, 414),
                          f"{t[:120]!r}: {r.status} {r.body[:200]!r}")
            statuses[r.status] = statuses.get(r.status, 0) + 1
        return statuses

    def test_traversal_refused(self):
        self.assertGreaterEqual(len(ATTACKS), 40)
        st = self.attack("safe.test", ATTACKS)
        print(f"{len(ATTACKS)} traversal attempts, all refused: {st}")

    def test_traversal_refused_with_symlinks_allowed(self):
        # links out of the root are followed here (that is the option),
        # but no request can make its own way out
        r, data = raw_request(self.port, b"/outdir/secret.txt",
                              host="links.test")
        self.assertEqual((r.status, r.body), (200, OUTSIDE))
        mine = [t for t in ATTACKS if t not in (
            b"/outdir/secret.txt", b"/outdir/", b"/passwd", b"/outfile")]
        self.assertGreaterEqual(len(mine), 40)
        st = self.attack("links.test", mine)
        print(f"{len(mine)} attempts with symlinks yes, all refused: {st}")

    def test_symlinks(self):
        def status(path, host="safe.test"):
            r, data = raw_request(self.port, path, host=host)
            return r.status, r.body
        # out of the root: refused, and said so in the log
        for p in (b"/passwd", b"/outfile", b"/outdir/secret.txt",
                  b"/outdir/", b"/outdir", b"/loop", b"/absin"):
            st, body = status(p)
            self.assertEqual(st, 404, p)
            self.assertNoLeak(body, p)
        self.syslog.wait(r"webd\[\d+\]: worker \d: safe: refused passwd: it leads out "
                         r"of the root")
        self.syslog.wait(r"safe: refused outdir/secret.txt: it leads out")
        # links that stay inside are fine
        self.assertEqual(status(b"/inlink"), (200, b"<p>index</p>\n"))
        self.assertEqual(status(b"/sub/up/file.txt"), (200, b"file\n"))
        # allowed: followed, but never through /proc's magic links
        self.assertEqual(status(b"/outfile", "links.test"), (200, CANARY))
        self.assertEqual(status(b"/passwd", "links.test")[0], 200)
        self.assertEqual(status(b"/proc/self/root/etc/passwd",
                                "links.test")[0], 404)

    def test_dotfiles_hidden(self):
        for p in (b"/.htpasswd", b"/.git/config", b"/%2ehtpasswd",
                  b"/sub/../.htpasswd", b"/.git/", b"/.git"):
            for host in ("safe.test", "links.test"):
                r, data = raw_request(self.port, p, host=host)
                self.assertEqual(r.status, 404, p)
                self.assertNoLeak(data, p)

    def test_error_pages_never_echo_the_target(self):
        mark = "M" + secrets.token_hex(6)
        cases = [
            ("GET", f"/{mark}<script>alert(1)</script>", ()),
            ("GET", f"/%3Cscript%3E{mark}%3C/script%3E", ()),
            ("GET", f"/{mark}%zz<script>", ()),
            ("GET", f"/{mark}%00<script>", ()),
            ("POST", f"/{mark}<script>", (("Content-Length", "0"),)),
            ("DELETE", f"/file.txt?{mark}<script>", ()),
            ("GET", f"/noindex/?{mark}<script>", ()),
            ("GET", f"/file.txt?{mark}<script>", (("If-Match", '"x"'),)),
            ("GET", f"/file.txt?{mark}<script>", (("Range", "bytes=99-"),)),
            ("GET", f"/../{mark}<script>", ()),
            ("GET", f"/.{mark}<script>", ()),
            ("GET", f"/{mark}" + "x" * 70000 + "<script>", ()),
            ("GET", f"http://{mark}<script>/x", ()),
            ("GET", f"/{mark}<script>", (("Host", f"{mark}<script>"),)),
            ("GET", f"/{mark}<script>", (("Referer", f"{mark}<script>"),
                                         ("User-Agent", f"{mark}<b>"))),
        ]
        seen = set()
        for method, target, hdrs in cases:
            host = "safe.test"
            hdrs = list(hdrs)
            if any(n == "Host" for n, v in hdrs):
                host = None
            r, data = raw_request(self.port, target.encode(), method=method,
                                  headers=hdrs, host=host)
            self.assertIsNotNone(r, (method, target[:80], data))
            self.assertGreaterEqual(r.status, 400, (method, target[:80]))
            self.assertNotIn(mark.encode(), r.body, (method, target[:80]))
            self.assertNotIn(b"<script", r.body, (method, target[:80]))
            seen.add(r.status)
        # the cases cover the kinds of error webd answers
        self.assertTrue({400, 403, 404, 405, 412, 416, 414} <= seen, seen)

    def test_request_line_garbage_refused(self):
        for data in (b"GET /\x00/../canary.txt HTTP/1.1\r\nHost: a\r\n\r\n",
                     b"GET /..\r/canary.txt HTTP/1.1\r\nHost: a\r\n\r\n",
                     b"GET /%0d%0a/../canary.txt HTTP/1.1\r\nHost: a\r\n\r\n",
                     b"GET /\t../canary.txt HTTP/1.1\r\nHost: a\r\n\r\n",
                     b"GET /../canary.txt HTTP/1.1\r\nHost: a\r\nHost: b"
                     b"\r\n\r\n",
                     b"GET /../canary.txt HTTP/9.9\r\nHost: a\r\n\r\n",
                     b"GET /../canary.txt\r\n\r\n"):
            out = raw(self.port, data, timeout=3)
            self.assertNoLeak(out, data)
            self.assertRegex(out[:12], rb"^(HTTP/1\.1 [45]\d\d|)", data)
