"""webd's static files (webd/server_file.c, autoindex.c, mime.c) and its
sites and locations (server.c), through one webd whose conf holds every
case: conditional requests in RFC 9110 section 13.2.2 order, ranges
(single, suffix, open, multipart parsed byte for byte, caps, 416,
If-Range), HEAD, 405, index files, the trailing-slash redirect,
autoindex escaping, gzip-static, virtual hosts, exact and longest-prefix
locations, alias, try-files, merged header fields, caching fields, HSTS
on TLS only, custom error pages, dotfiles and types."""
import email.utils
import gzip
import html.parser
import os
import re
import shutil
import time
import urllib.parse

from httpc import Conn, make_cert, request_bytes
from webdtest import WebdClass, multipart, tls_get, write
from harness import free_port

FILE = bytes(ord("a") + (i * 7) % 26 for i in range(10000))
BIG = os.urandom(200000)            # beyond WEBD_INLINE_MAX: sendfile
JS = b"function f() { return 1; }\n" * 50
OLD = 1_600_000_000                  # a fixed mtime, long ago
NASTY = ['a<b>.txt', 'x&y.txt', 'q"uote.txt', "s'q.txt", 'with space.txt',
         'na\u00efve-\u65e5\u672c.txt', '<img src=x onerror=alert(1)>.txt',
         '%41.txt', '#hash.txt', '?q.txt', 'plus+semi;.txt',
         'javascript:alert(1)']


def httpdate(t):
    return email.utils.formatdate(t, usegmt=True)


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.cur = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.cur = [dict(attrs)["href"], ""]

    def handle_data(self, data):
        if self.cur is not None:
            self.cur[1] += data

    def handle_endtag(self, tag):
        if tag == "a" and self.cur is not None:
            self.links.append(tuple(self.cur))
            self.cur = None


class StaticTest(WebdClass):
    @classmethod
    def make_tree(cls):
        d = cls.dir
        w = os.path.join(d, "www")
        write(f"{w}/index.html", "<h1>home</h1>\n")
        write(f"{w}/file.txt", FILE, mtime=OLD)
        write(f"{w}/big.bin", BIG, mtime=OLD)
        write(f"{w}/empty.txt", b"")
        write(f"{w}/fresh.txt", b"fresh\n")
        write(f"{w}/noext", b"noext\n")
        write(f"{w}/x.wtest", b"custom type\n")
        write(f"{w}/notes.md", b"# md\n")
        write(f"{w}/dir/index.htm", "dir htm\n")
        write(f"{w}/both/index.html", "both html\n")
        write(f"{w}/both/index.htm", "both htm\n")
        write(f"{w}/order/a.html", "a\n")
        write(f"{w}/order/b.html", "b\n")
        write(f"{w}/order/index.html", "index\n")
        write(f"{w}/noindex/x.txt", "x\n")
        write(f"{w}/pretty/about.html", "<p>about</p>\n")
        write(f"{w}/pretty/docs/index.html", "<p>docs</p>\n")
        write(f"{w}/pretty/plain.txt", "plain\n")
        write(f"{w}/pretty/.html", "dotfile\n")
        write(f"{w}/pretty/sub/.html", "dotfile\n")
        os.mkfifo(f"{w}/pipe")
        write(f"{w}/with space/index.html", "space\n")
        write(f"{w}/gz/app.js", JS)
        write(f"{w}/gz/app.js.gz", gzip.compress(JS))
        write(f"{w}/gz/pipe.js", b"plain pipe.js\n")
        os.mkfifo(f"{w}/gz/pipe.js.gz")
        write(f"{w}/gz/only.css", b"body{}\n")
        write(f"{w}/app.js", JS)
        write(f"{w}/app.js.gz", gzip.compress(JS))
        write(f"{w}/.secret", b"dotfile\n")
        write(f"{w}/.well-known/acme.txt", b"acme\n")
        write(f"{w}/dots/.hidden", b"hidden but allowed\n")
        write(f"{w}/spa/index.html", b"<p>spa shell</p>\n")
        write(f"{w}/spa/real.js", b"real\n")
        write(f"{w}/strict/real.txt", b"strict\n")
        for x in ("h", "h2", "h3", "cache", "cc", "ccx", "latin",
                  "private", "nobad"):
            write(f"{w}/{x}/x.txt", f"{x}\n")
        write(f"{w}/e403/noidx/x.txt", b"x\n")
        write(f"{w}/err/404.html", b"<p>custom 404 page</p>\n")
        write(f"{w}/err/403.html", b"<p>custom 403 page</p>\n")
        write(f"{w}/err/403b.html", b"<p>location 403 page</p>\n")
        os.makedirs(f"{w}/files/subdir<x>")
        write(f"{w}/files/.hidden", b"hidden\n")
        for i, n in enumerate(NASTY):
            write(f"{w}/files/{n}", f"file {i}\n")
        for f in ("site.css", "deep/er/page.css", "static/s.css",
                  "static/s.js", "exact.css", "g/a1.txt", "g/b.txt",
                  "g/c.txt", "g/sub/a.txt"):
            write(f"{d}/wwwG/{f}", f"{f}\n")
        write(f"{d}/wwwA/a/x.txt", b"A\n")
        write(f"{d}/wwwA/a/bc/x.txt", b"A bc\n")
        write(f"{d}/wwwB/a/b/x.txt", b"B\n")
        write(f"{d}/wwwA/p/x.txt", b"pA\n")
        write(f"{d}/wwwA/p/q/x.txt", b"pqA\n")
        write(f"{d}/wwwB/p/q/x.txt", b"pqB\n")
        write(f"{d}/aliased/y.txt", b"aliased y\n")
        write(f"{d}/aliased/index.html", b"aliased index\n")
        write(f"{d}/aliased/sub/z.txt", b"z\n")
        write(f"{d}/aliased/.git/config", b"[core] secret\n")
        write(f"{d}/beside-alias.txt", b"beside the alias\n")
        write(f"{d}/mime.types", "# test types\n"
              "application/x-webd-test\twtest\n"
              "text/x-md-test md markdown\n")
        cls.tport = free_port()
        make_cert(d, "cert", "ec", ["localhost"])

    @classmethod
    def conf(cls):
        return f"""
mime-types "@DIR@/mime.types"
server "first" {{
	listen 127.0.0.1:{cls.port}
	name "first.test"
	return 200 "first"
}}
server "main" default {{
	listen 127.0.0.1:{cls.port}
	listen 127.0.0.1:{cls.tport} tls
	tls {{
		certificate "@DIR@/cert.crt" key "@DIR@/cert.key"
	}}
	name "main.test"
	hsts 1d subdomains
	root "@DIR@/www"
	index index.html index.htm
	header X-Server "main"
	header X-Frame-Options "DENY"
	error-page 403 "/err/403.html"
	location "/order/" {{
		index b.html a.html
	}}
	location "/files/" {{
		autoindex yes
		header X-Frame-Options "SAMEORIGIN"
	}}
	location "/gz/" {{
		gzip-static yes
	}}
	location "/static/" {{
		alias "@DIR@/aliased"
	}}
	location "/assets" {{
		alias "@DIR@/aliased"
	}}
	location "/up" {{
		alias "@DIR@/aliased"
		symlinks yes
		autoindex yes
	}}
	location "/a/" {{
		root "@DIR@/wwwA"
	}}
	location "/a/b/" {{
		root "@DIR@/wwwB"
	}}
	location "/p/q/" {{
		root "@DIR@/wwwB"
	}}
	location "/p/" {{
		root "@DIR@/wwwA"
	}}
	location "/ex" exact {{
		return 200 "exact"
	}}
	location "/ex" {{
		return 200 "prefix"
	}}
	location "/file.txt" exact {{
		header X-Exact "yes"
	}}
	location "/spa/" {{
		try-files "$uri" "/spa/index.html"
	}}
	location "/strict/" {{
		try-files "$uri" "=404"
	}}
	location "/pretty/" {{
		try-files "$uri" "$uri.html" "$uri/index.html" "=410"
	}}
	location "/h/" {{
		header X-Loc "h"
	}}
	location "/h2/" {{
		header X-Server "override"
	}}
	location "/h3/" {{
		header X-Frame-Options ""
	}}
	location "/cache/" {{
		expires 1h
	}}
	location "/cc/" {{
		cache-control "public, max-age=60, immutable"
	}}
	location "/ccx/" {{
		expires 2h
		cache-control "no-cache"
	}}
	location "/e404/" {{
		error-page 404 "/err/404.html"
	}}
	location "/e403/" {{
		error-page 403 "/err/403b.html"
	}}
	location "/latin/" {{
		charset "iso-8859-1"
	}}
	location "/dots/" {{
		dotfiles yes
	}}
	location "/private/" {{
		allow 127.0.0.1
		deny 127.0.0.0/8
	}}
	location "/nobad/" {{
		deny 127.0.0.3
	}}
	location "/moved" exact {{
		return 301 "https://elsewhere.test/new"
	}}
	location "/vars" {{
		return 302 "$scheme://$host:8443$request_uri#top"
	}}
	location "/literal" exact {{
		return 200 "$host stays"
	}}
}}
server "plain" {{
	listen 127.0.0.1:{cls.port}
	name "plain.test"
	return 301 "https://$host$request_uri"
}}
server "rel" {{
	listen 127.0.0.1:{cls.port}
	name "rel.test"
	return 302 "$request_uri"
}}
server "www" {{
	listen 127.0.0.1:{cls.port}
	name "www.example.org"
	return 200 "www"
}}
server "wild" {{
	listen 127.0.0.1:{cls.port}
	name "*.example.org"
	return 200 "wild"
}}
server "wild2" {{
	listen 127.0.0.1:{cls.port}
	name "*.deep.example.org" "other.test"
	return 200 "wild2"
}}
server "glob" {{
	listen 127.0.0.1:{cls.port}
	name "glob.test"
	root "@DIR@/wwwG"
	location "/exact.css" exact {{
		header X-Loc "exact"
	}}
	location "*.css" {{
		expires 1h
		header X-Loc "css"
	}}
	location "/g/[ab]*.txt" {{
		header X-Loc "class"
	}}
	location "/g/?.txt" {{
		header X-Loc "one"
	}}
	location "/g/" {{
		header X-Loc "prefix g"
	}}
	location "/static/" {{
		header X-Loc "prefix static"
	}}
}}
"""

    def validators(self, path="/file.txt"):
        r = self.get(path)
        self.assertEqual(r.status, 200)
        return r.header("ETag"), r.header("Last-Modified")

    # conditional requests, each alone

    def test_etag_and_last_modified(self):
        r = self.get("/file.txt")
        self.assertEqual((r.status, r.body), (200, FILE))
        self.assertRegex(r.header("ETag"), r'^"[0-9a-f]+-[0-9a-f]+-'
                         r'[0-9a-f]+"$')
        self.assertEqual(r.header("Last-Modified"), httpdate(OLD))
        self.assertEqual(r.header("Accept-Ranges"), "bytes")
        # the tag follows the file: another file, another tag
        self.assertNotEqual(self.get("/big.bin").header("ETag"),
                            r.header("ETag"))

    def test_if_none_match(self):
        etag, lm = self.validators()
        for v in (etag, "W/" + etag, '"other", ' + etag, "*"):
            r = self.get("/file.txt", [("If-None-Match", v)])
            self.assertEqual(r.status, 304, v)
            self.assertEqual(r.body, b"")
            self.assertEqual(r.header("ETag"), etag)
            self.assertEqual(r.header("Last-Modified"), lm)
        for v in ('"other"', 'W/"other"', etag[:-2] + '"'):
            r = self.get("/file.txt", [("If-None-Match", v)])
            self.assertEqual((r.status, r.body), (200, FILE), v)
        # a list may come in several lines (RFC 9110 5.3)
        r = self.get("/file.txt", [("If-None-Match", '"other"'),
                                   ("If-None-Match", etag)])
        self.assertEqual(r.status, 304)

    def test_if_modified_since(self):
        etag, lm = self.validators()
        for v, want in ((lm, 304), (httpdate(OLD + 3600), 304),
                        (httpdate(OLD - 1), 200), ("not a date", 200),
                        ("Sunday, 13-Sep-20 12:26:40 GMT", 304)):
            r = self.get("/file.txt", [("If-Modified-Since", v)])
            self.assertEqual(r.status, want, v)
            self.assertEqual(r.body, FILE if want == 200 else b"")

    def test_if_match_strong(self):
        etag, lm = self.validators()
        for v, want in ((etag, 200), ("*", 200), ('"x", ' + etag, 200),
                        ('"other"', 412), ("W/" + etag, 412)):
            r = self.get("/file.txt", [("If-Match", v)])
            self.assertEqual(r.status, want, v)
        r = self.get("/file.txt", [("If-Match", '"other"')])
        self.assertNotIn(FILE[:100], r.body)
        r = self.get("/file.txt", [("If-Match", '"x"'), ("If-Match", etag)])
        self.assertEqual(r.status, 200)
        r = self.get("/file.txt", [("If-Match", '"x"'), ("If-Match", '"y"')])
        self.assertEqual(r.status, 412)

    def test_if_unmodified_since(self):
        etag, lm = self.validators()
        for v, want in ((lm, 200), (httpdate(OLD + 10), 200),
                        (httpdate(OLD - 10), 412), ("garbage", 200)):
            r = self.get("/file.txt", [("If-Unmodified-Since", v)])
            self.assertEqual(r.status, want, v)

    # their order (RFC 9110 section 13.2.2)

    def test_precondition_order(self):
        etag, lm = self.validators()
        old, new = httpdate(OLD - 100), httpdate(OLD + 100)
        cases = [
            # If-Match decides; If-Unmodified-Since is not looked at
            ([("If-Match", etag), ("If-Unmodified-Since", old)], 200),
            ([("If-Match", '"no"'), ("If-Unmodified-Since", new)], 412),
            # If-None-Match decides; If-Modified-Since is not looked at
            ([("If-None-Match", '"no"'), ("If-Modified-Since", lm)], 200),
            ([("If-None-Match", etag), ("If-Modified-Since", old)], 304),
            # step 1/2 before step 3/4: a failed If-Match wins over a
            # matching If-None-Match
            ([("If-Match", '"no"'), ("If-None-Match", etag)], 412),
            ([("If-Unmodified-Since", old), ("If-Modified-Since", lm)],
             412),
            # both passing: 304 from If-None-Match
            ([("If-Match", etag), ("If-None-Match", etag)], 304),
            ([("If-Unmodified-Since", new), ("If-Modified-Since", new)],
             304),
        ]
        for hdrs, want in cases:
            r = self.get("/file.txt", hdrs)
            self.assertEqual(r.status, want, hdrs)

    def test_preconditions_by_method(self):
        etag, lm = self.validators()
        # HEAD is like GET: 304
        r = self.get("/file.txt", [("If-None-Match", etag)], method="HEAD")
        self.assertEqual(r.status, 304)
        r = self.get("/file.txt", [("If-Match", '"no"')], method="HEAD")
        self.assertEqual(r.status, 412)
        # a method the resource does not support answers 405 whatever
        # the preconditions say (RFC 9110 13.2.1: they are ignored when
        # the answer without them would not be 2xx or 412)
        for m in ("POST", "PUT", "DELETE"):
            for h in (("If-None-Match", etag), ("If-Match", '"no"')):
                r = self.get("/file.txt", [h, ("Content-Length", "0")],
                             method=m)
                self.assertEqual(r.status, 405, (m, h))
        # so does a missing file: 404, not 412
        r = self.get("/missing.txt", [("If-Match", '"x"')])
        self.assertEqual(r.status, 404)

    def test_304_keeps_connection_in_step(self):
        etag, lm = self.validators("/cache/x.txt")
        with Conn(self.port) as c:
            r = c.request("GET", "/cache/x.txt",
                          [("If-None-Match", etag)], host="main.test")
            self.assertEqual(r.status, 304)
            self.assertIsNone(r.header("Content-Type"))
            # the caching fields a 200 would carry (RFC 9110 15.4.5)
            self.assertEqual(r.header("Cache-Control"), "max-age=3600")
            self.assertIsNotNone(r.header("Expires"))
            # no body bytes after a 304: the next answer parses
            r = c.request("GET", "/file.txt", host="main.test")
            self.assertEqual((r.status, r.body), (200, FILE))

    # ranges

    def range(self, spec, path="/file.txt", headers=()):
        return self.get(path, [("Range", spec)] + list(headers))

    def assertPartial(self, r, first, last, data=FILE):
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.header("Content-Range"),
                         f"bytes {first}-{last}/{len(data)}")
        self.assertEqual(r.header("Content-Length"), str(last - first + 1))
        self.assertEqual(r.body, data[first:last + 1])

    def test_single_ranges(self):
        self.assertPartial(self.range("bytes=0-99"), 0, 99)
        self.assertPartial(self.range("bytes=0-0"), 0, 0)
        self.assertPartial(self.range("bytes=1234-5678"), 1234, 5678)
        # suffix: the last N bytes
        self.assertPartial(self.range("bytes=-500"), 9500, 9999)
        self.assertPartial(self.range("bytes=-20000"), 0, 9999)
        # open-ended, and an end past the file clipped
        self.assertPartial(self.range("bytes=9990-"), 9990, 9999)
        self.assertPartial(self.range("bytes=9990-20000"), 9990, 9999)
        # numbers past 64 bits are past the file too (RFC 9110 14.1.2)
        self.assertPartial(self.range("bytes=0-" + "9" * 30), 0, 9999)
        self.assertPartial(self.range("bytes=-" + "9" * 30), 0, 9999)
        # one satisfiable among unsatisfiable ones: that one alone
        self.assertPartial(self.range("bytes=20000-,5-9"), 5, 9)
        r = self.range("bytes=0-99")
        self.assertEqual(r.header("Content-Type"),
                         "text/plain; charset=utf-8")
        self.assertIsNotNone(r.header("ETag"))

    def test_ranges_of_a_sendfile_body(self):
        self.assertPartial(self.range("bytes=70000-150000", "/big.bin"),
                           70000, 150000, BIG)
        self.assertPartial(self.range("bytes=-1", "/big.bin"), 199999,
                           199999, BIG)

    def test_multipart_byteranges(self):
        for path, data, spec, want in (
                ("/file.txt", FILE, "bytes=0-9,100-109,-5",
                 [(0, 9), (100, 109), (9995, 9999)]),
                ("/file.txt", FILE, "bytes=500-, 0-1",
                 [(500, 9999), (0, 1)]),
                # empty list elements are skipped (RFC 9110 5.6.1)
                ("/file.txt", FILE, "bytes=0-1,,5-6, ,",
                 [(0, 1), (5, 6)]),
                # pieces larger than the 16k read size, past the inline
                # limit
                ("/big.bin", BIG, "bytes=0-20000,50000-120000,199990-",
                 [(0, 20000), (50000, 120000), (199990, 199999)])):
            r = self.range(spec, path)
            self.assertEqual(r.status, 206, spec)
            self.assertIsNone(r.header("Content-Range"))
            self.assertEqual(int(r.header("Content-Length")), len(r.body))
            parts = multipart(r)
            self.assertEqual(len(parts), len(want), spec)
            for (h, body), (a, b) in zip(parts, want):
                self.assertEqual(h["content-range"],
                                 f"bytes {a}-{b}/{len(data)}")
                self.assertEqual(h["content-type"], "text/plain; "
                                 "charset=utf-8" if path == "/file.txt"
                                 else "application/octet-stream")
                self.assertEqual(body, data[a:b + 1], (spec, a, b))

    def test_multipart_cap_and_overlap_give_whole_file(self):
        eight = ",".join(f"{i * 100}-{i * 100 + 9}" for i in range(8))
        r = self.range("bytes=" + eight)
        self.assertEqual(r.status, 206)
        self.assertEqual(len(multipart(r)), 8)
        nine = ",".join(f"{i * 100}-{i * 100 + 9}" for i in range(9))
        for spec in ("bytes=" + nine, "bytes=0-99,50-149",
                     "bytes=0-10,10-20", "bytes=-100,9950-"):
            r = self.range(spec)
            self.assertEqual((r.status, r.body), (200, FILE), spec)
            self.assertIsNone(r.header("Content-Range"))

    def test_416_unsatisfiable(self):
        for spec in ("bytes=10000-", "bytes=20000-30000", "bytes=-0",
                     "bytes=10000-10001,20000-", "bytes=" + "9" * 30 + "-"):
            r = self.range(spec)
            self.assertEqual(r.status, 416, spec)
            self.assertEqual(r.header("Content-Range"), "bytes */10000")
            self.assertNotIn(FILE[:50], r.body)
        r = self.range("bytes=0-0", "/empty.txt")
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */0")

    def test_malformed_range_ignored(self):
        for spec in ("bytes=abc", "items=0-5", "bytes=5-1", "bytes=",
                     "bytes=1-2-3", "bytes=--5", "bytes=0-1;x"):
            r = self.range(spec)
            self.assertEqual((r.status, r.body), (200, FILE), spec)

    def test_if_range(self):
        etag, lm = self.validators()
        # a matching entity tag or date: the range
        self.assertPartial(self.range("bytes=0-9", headers=[
            ("If-Range", etag)]), 0, 9)
        self.assertPartial(self.range("bytes=0-9", headers=[
            ("If-Range", lm)]), 0, 9)
        # anything else: the whole file
        for v in ('"other"', "W/" + etag, httpdate(OLD + 1),
                  httpdate(OLD - 1), "garbage"):
            r = self.range("bytes=0-9", headers=[("If-Range", v)])
            self.assertEqual((r.status, r.body), (200, FILE), v)
        # a date is a strong validator only a second after the change
        # (RFC 9110 8.8.2.2, 13.1.5): a file changed this very second
        # gets the whole file
        path = os.path.join(self.dir, "www", "fresh.txt")
        now = int(time.time())
        os.utime(path, (now + 30, now + 30))
        lm2 = httpdate(now + 30)
        r = self.range("bytes=0-1", "/fresh.txt", [("If-Range", lm2)])
        self.assertEqual((r.status, r.body), (200, b"fresh\n"))

    # HEAD, 405

    def test_head(self):
        for path in ("/file.txt", "/big.bin", "/empty.txt", "/dir/"):
            g = self.get(path)
            with Conn(self.port) as c:
                c.send(request_bytes("HEAD", path, host="main.test") +
                       request_bytes("GET", "/index.html",
                                     host="main.test"))
                h = c.read_response("HEAD")
                nxt = c.read_response()
            self.assertEqual(h.status, 200, path)
            for f in ("Content-Length", "Content-Type", "ETag",
                      "Last-Modified", "X-Server"):
                self.assertEqual(h.header(f), g.header(f), (path, f))
            # no body: the pipelined GET's answer comes right after
            self.assertEqual((nxt.status, nxt.body),
                             (200, b"<h1>home</h1>\n"), path)
        r = self.get("/missing", method="HEAD")
        self.assertEqual((r.status, r.body), (404, b""))

    def test_405_with_allow(self):
        for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
            for path in ("/file.txt", "/dir/", "/missing"):
                r = self.get(path, [("Content-Length", "0")], method=m)
                self.assertEqual(r.status, 405, (m, path))
                self.assertEqual(r.header("Allow"), "GET, HEAD")
                self.assertNotIn(FILE[:50], r.body)

    # index, redirect, autoindex

    def test_index_files_in_order(self):
        self.assertEqual(self.get("/").body, b"<h1>home</h1>\n")
        # index.html missing: the second name of the list
        self.assertEqual(self.get("/dir/").body, b"dir htm\n")
        # both there: the first of the list
        self.assertEqual(self.get("/both/").body, b"both html\n")
        # a location's own list, in its order (not alphabetical, and not
        # the server's index.html)
        r = self.get("/order/")
        self.assertEqual(r.body, b"b\n")
        self.assertEqual(r.header("Content-Type"), "text/html; "
                         "charset=utf-8")
        # no index and no autoindex: forbidden (the server's custom 403)
        r = self.get("/noindex/")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.body, b"<p>custom 403 page</p>\n")

    def test_trailing_slash_redirect(self):
        for path, loc in (("/dir", "/dir/"), ("/dir?a=1&b=%20", "/dir/?a=1&b=%20"),
                          ("/dir?", "/dir/?"),
                          ("/with%20space", "/with%20space/"),
                          ("/static/sub", "/static/sub/"),
                          ("/files/subdir%3Cx%3E", "/files/subdir%3Cx%3E/")):
            r = self.get(path)
            self.assertEqual(r.status, 301, path)
            self.assertEqual(r.header("Location"), loc, path)
            r = self.get(path, method="HEAD")
            self.assertEqual(r.status, 301, path)
        self.assertEqual(self.get("/with%20space/").body, b"space\n")
        # a long path whose encoded form is three times as long: the
        # Location is whole (it was cut at 2047 bytes)
        comp = "é" * 100        # 200 bytes, 600 encoded
        path = "/long/" + "/".join([comp] * 6)
        os.makedirs(os.path.join(self.dir, "www") + path, exist_ok=True)
        want = urllib.parse.quote(path) + "/"
        self.assertGreater(len(want), 3600)
        r = self.get(urllib.parse.quote(path))
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), want)

    def test_autoindex_escapes_names(self):
        r = self.get("/files/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; "
                         "charset=utf-8")
        # the location's fields, merged with the server's
        self.assertEqual((r.all("X-Frame-Options"), r.all("X-Server")),
                         (["SAMEORIGIN"], ["main"]))
        body = r.body.decode("utf-8")
        for bad in ("<img", "<b>", 'q"uote', "subdir<x>"):
            self.assertNotIn(bad, body)
        p = Links()
        p.feed(body)
        links = dict((text, href) for href, text in p.links)
        self.assertEqual(links.pop("../"), "../")
        self.assertIn("subdir<x>/", links)
        self.assertEqual(links.pop("subdir<x>/"), "subdir%3Cx%3E/")
        self.assertEqual(sorted(links), sorted(NASTY))
        for name, href in links.items():
            # every byte outside the unreserved set is encoded
            self.assertRegex(href, r"^[A-Za-z0-9._~!$()*,;=:@%+-]+$")
            # no colon before the first slash: it would read as a scheme
            # ("javascript:...", RFC 3986 4.2)
            self.assertNotRegex(href, r"^[^/]*:", name)
            self.assertNotIn("#", href)
            self.assertNotIn("?", href)
            self.assertEqual(urllib.parse.unquote(href), name)
            # and the link leads to the file
            f = self.get("/files/" + href)
            self.assertEqual((f.status, f.body),
                             (200, f"file {NASTY.index(name)}\n".encode()),
                             name)
        self.assertNotIn(".hidden", body)
        # without autoindex the same kind of folder is forbidden
        self.assertEqual(self.get("/noindex/").status, 403)

    def test_autoindex_too_big_stays_well_formed(self):
        # names that take ~2 KB a row escaped: 9000 of them pass the 16
        # MiB a listing may take; it ends well, and says it is partial
        many = os.path.join(self.dir, "aliased", "many")
        os.makedirs(many)
        self.addCleanup(shutil.rmtree, many)
        for i in range(9000):
            open(os.path.join(many, "&" * 245 + "%05d" % i), "w").close()
        r = self.get("/up/many/")
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        self.assertLessEqual(len(r.body), 16 * 1024 * 1024)
        body = r.body.decode()
        self.assertTrue(body.endswith("</pre><hr></body></html>\n"))
        self.assertIn("(too many entries: only some of them are shown)",
                      body)
        rows = re.findall(r'<a href="([^"]*)">', body)[1:]
        self.assertGreater(len(rows), 5000)
        self.assertLess(len(rows), 9000)
        self.assertEqual(rows, sorted(rows))

    # gzip-static

    def test_gzip_static(self):
        gz = gzip.compress(JS)
        plain = self.get("/gz/app.js")
        self.assertEqual(plain.body, JS)
        self.assertEqual(plain.header("Vary"), "Accept-Encoding")
        self.assertIsNone(plain.header("Content-Encoding"))
        for ae in ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5",
                   "GZIP", "deflate , gzip", "GZIP ;q=0.5", "gzip\t; q=1",
                   "*", "br, *;q=0.1", "*;q=0, gzip"):
            r = self.get("/gz/app.js", [("Accept-Encoding", ae)])
            self.assertEqual(r.status, 200, ae)
            self.assertEqual(r.header("Content-Encoding"), "gzip", ae)
            self.assertEqual(r.header("Vary"), "Accept-Encoding")
            # the original's type, not application/gzip
            self.assertEqual(r.header("Content-Type"),
                             "text/javascript; charset=utf-8")
            self.assertEqual(gzip.decompress(r.body), JS)
            self.assertEqual(int(r.header("Content-Length")), len(gz))
            self.assertNotEqual(r.header("ETag"), plain.header("ETag"))
        r = self.get("/gz/app.js", [("Accept-Encoding", "br"),
                                    ("Accept-Encoding", "gzip")])
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        for ae in ("gzip;q=0", "gzip; q=0.000", "deflate, br",
                   "identity", "gzipx", "x-gzip2", "GZIP;Q=0", "*;q=0",
                   "gzip;q=0, *", "*, gzip ;q=0"):
            r = self.get("/gz/app.js", [("Accept-Encoding", ae)])
            self.assertEqual(r.body, JS, ae)
            self.assertIsNone(r.header("Content-Encoding"), ae)
            self.assertEqual(r.header("Vary"), "Accept-Encoding")
        # no .gz beside it: the file itself, still varying
        r = self.get("/gz/only.css", [("Accept-Encoding", "gzip")])
        self.assertEqual((r.body, r.header("Vary")),
                         (b"body{}\n", "Accept-Encoding"))
        self.assertIsNone(r.header("Content-Encoding"))
        # HEAD tells the compressed length
        r = self.get("/gz/app.js", [("Accept-Encoding", "gzip")],
                     method="HEAD")
        self.assertEqual(int(r.header("Content-Length")), len(gz))
        # where gzip-static is off, neither the .gz nor Vary
        r = self.get("/app.js", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.body, JS)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertIsNone(r.header("Vary"))

    # sites

    def test_site_selection_by_host(self):
        for host, want in (("www.example.org", b"www\n"),
                           ("WWW.Example.ORG", b"www\n"),
                           ("www.example.org:8080", b"www\n"),
                           ("www.example.org.", b"www\n"),
                           ("foo.example.org", b"wild\n"),
                           ("a.b.example.org", b"wild\n"),
                           ("x.deep.example.org", b"wild2\n"),
                           ("other.test", b"wild2\n"),
                           ("first.test", b"first\n"),
                           ("first.test:1", b"first\n"),
                           ("example.org", b"<h1>home</h1>\n"),
                           ("unknown.test", b"<h1>home</h1>\n"),
                           ("127.0.0.1", b"<h1>home</h1>\n"),
                           ("main.test", b"<h1>home</h1>\n")):
            r = self.get("/", host=host)
            self.assertEqual((r.status, r.body), (200, want), host)
        # HTTP/1.0 without Host: the default server
        with Conn(self.port) as c:
            r = c.request("GET", "/", host=None, version="HTTP/1.0")
        self.assertEqual(r.body, b"<h1>home</h1>\n")
        # absolute-form: its authority, not Host (RFC 9112 3.2.2)
        with Conn(self.port) as c:
            r = c.request("GET", "http://www.example.org/", [
                ("Connection", "close")], host="first.test")
        self.assertEqual(r.body, b"www\n")

    def test_longest_prefix_and_exact_locations(self):
        for path, want in (("/a/x.txt", b"A\n"), ("/a/b/x.txt", b"B\n"),
                           ("/a/bc/x.txt", b"A bc\n"),
                           ("/p/x.txt", b"pA\n"), ("/p/q/x.txt", b"pqB\n"),
                           ("/ex", b"exact\n"), ("/ex?x=1", b"exact\n"),
                           ("/ex/", b"prefix\n"), ("/exy", b"prefix\n"),
                           ("/ex/a/b", b"prefix\n")):
            r = self.get(path)
            self.assertEqual((r.status, r.body), (200, want), path)
        # an exact location for a file adds to it and serves it
        r = self.get("/file.txt")
        self.assertEqual(r.header("X-Exact"), "yes")
        self.assertIsNone(self.get("/file.txt/").header("X-Exact"))
        r = self.get("/moved")
        self.assertEqual((r.status, r.header("Location")),
                         (301, "https://elsewhere.test/new"))

    def test_pattern_locations(self):
        """location "*.css" { expires 1h }: a pattern (fnmatch(3), "*"
        takes slashes too) matched on the decoded, normalized path; an
        exact location first, then the patterns in order, then the
        longest prefix."""
        for path, loc in (("/site.css", "css"), ("/deep/er/page.css", "css"),
                          ("/site.css?v=3", "css"), ("/x/../site.css", "css"),
                          ("/site%2ecss", "css"), ("/static/s.css", "css"),
                          ("/static/s.js", "prefix static"),
                          ("/exact.css", "exact"),
                          ("/g/a1.txt", "class"), ("/g/b.txt", "class"),
                          ("/g/c.txt", "one"), ("/g/sub/a.txt", "prefix g")):
            r = self.get(path, host="glob.test")
            self.assertEqual((r.status, r.header("X-Loc")), (200, loc), path)
            want = "max-age=3600" if loc == "css" else None
            self.assertEqual(r.header("Cache-Control"), want, path)
        # the files are the server's, whatever the location
        self.assertEqual(self.get("/deep/er/page.css",
                                  host="glob.test").body,
                         b"deep/er/page.css\n")
        r = self.get("/nothere.css", host="glob.test")
        self.assertEqual((r.status, r.header("X-Loc")), (404, "css"))

    def test_return_with_variables(self):
        """nginx's return 301 https://$host$request_uri: the request's
        host without its port, its target as sent (origin form), the
        scheme; only in redirects, a body is literal."""
        r = self.get("/a/b?x=1&y=%20", host="plain.test:8080")
        self.assertEqual((r.status, r.header("Location")),
                         (301, "https://plain.test/a/b?x=1&y=%20"))
        with Conn(self.port) as c:
            c.send(b"GET http://plain.test?q=1 HTTP/1.1\r\n"
                   b"Host: plain.test\r\n\r\n")
            r = c.read_response()
        self.assertEqual((r.status, r.header("Location")),
                         (301, "https://plain.test/?q=1"))
        r = self.get("/vars/p%41th?k", host="v.test")
        self.assertEqual((r.status, r.header("Location")),
                         (302, "http://v.test:8443/vars/p%41th?k#top"))
        r = self.get("/literal", host="v.test")
        self.assertEqual((r.status, r.body), (200, b"$host stays\n"))
        # a relative redirect never leads to another host
        for path in ("//evil.example/x", "///evil.example/x"):
            r = self.get(path, host="rel.test")
            self.assertEqual((r.status, r.header("Location")),
                             (302, "/evil.example/x"), path)
        # no host to send an HTTP/1.0 client back to
        with Conn(self.port) as c:
            c.send(b"GET /vars HTTP/1.0\r\n\r\n")
            r = c.read_response()
        self.assertEqual((r.status, r.header("Location")), (400, None))

    def test_alias(self):
        self.assertEqual(self.get("/static/y.txt").body, b"aliased y\n")
        self.assertEqual(self.get("/static/").body, b"aliased index\n")
        self.assertEqual(self.get("/static/sub/z.txt").body, b"z\n")
        # the location path is replaced, not appended to
        self.assertEqual(self.get("/static/static/y.txt").status, 404)
        self.assertEqual(self.get("/y.txt").status, 404)

    def test_alias_without_final_slash(self):
        # location "/assets" (no slash) stands for the folder
        self.assertEqual(self.get("/assets/y.txt").body, b"aliased y\n")
        r = self.get("/assets")
        self.assertEqual((r.status, r.header("Location")), (301, "/assets/"))
        self.assertEqual(self.get("/assets/").body, b"aliased index\n")
        # a path that continues the location's name is not in the folder:
        # nginx's off-by-slash leak, a dotfile beside the rules...
        for path in ("/assets.git/config", "/assets/.git/config",
                     "/up.git/config"):
            r = self.get(path)
            self.assertEqual(r.status, 404, path)
            self.assertNotIn(b"secret", r.body, path)
        # ...and the folder above the alias, where symlinks may lead out
        for path in ("/up../beside-alias.txt", "/up..%2fbeside-alias.txt",
                     "/up../", "/up.."):
            r = self.get(path)
            self.assertIn(r.status, (400, 404), path)
            self.assertNotIn(b"beside", r.body, path)
        self.assertEqual(self.get("/up/y.txt").body, b"aliased y\n")

    def test_try_files(self):
        r = self.get("/spa/real.js")
        self.assertEqual(r.body, b"real\n")
        # an unknown route: the shell, as HTML, status 200
        for path in ("/spa/route", "/spa/deep/route/x?q=1", "/spa/"):
            r = self.get(path)
            self.assertEqual((r.status, r.body),
                             (200, b"<p>spa shell</p>\n"), path)
            self.assertEqual(r.header("Content-Type"),
                             "text/html; charset=utf-8")
        self.assertEqual(self.get("/strict/real.txt").body, b"strict\n")
        r = self.get("/strict/nope")
        self.assertEqual(r.status, 404)
        self.assertNotIn(b"strict", r.body)
        # nginx's "$uri.html" and "$uri/index.html": the request's path
        # with a suffix, typed by the file found
        for path, body in (("/pretty/about", b"<p>about</p>\n"),
                           ("/pretty/docs", b"<p>docs</p>\n"),
                           ("/pretty/plain.txt", b"plain\n")):
            r = self.get(path)
            self.assertEqual((r.status, r.body), (200, body), path)
        self.assertEqual(self.get("/pretty/about").header("Content-Type"),
                         "text/html; charset=utf-8")
        r = self.get("/pretty/nothing")
        self.assertEqual((r.status, r.reason), (410, "Gone"))
        # "$uri.html" of a directory's path names a dotfile: as hidden
        # as the dotfile itself
        for path in ("/pretty/", "/pretty/sub/", "/pretty/.html"):
            r = self.get(path)
            self.assertNotIn(b"dotfile", r.body, path)
            self.assertIn(r.status, (404, 410), path)

    # response fields

    def test_header_inheritance(self):
        r = self.get("/h/x.txt")
        self.assertEqual(r.all("X-Server"), ["main"])
        self.assertEqual(r.all("X-Frame-Options"), ["DENY"])
        self.assertEqual(r.all("X-Loc"), ["h"])
        # same name: the location's replaces the server's
        r = self.get("/h2/x.txt")
        self.assertEqual(r.all("X-Server"), ["override"])
        self.assertEqual(r.all("X-Frame-Options"), ["DENY"])
        # empty value: removed
        r = self.get("/h3/x.txt")
        self.assertEqual(r.all("X-Frame-Options"), [])
        self.assertEqual(r.all("X-Server"), ["main"])
        # on errors and redirects too
        r = self.get("/h/missing")
        self.assertEqual((r.status, r.all("X-Loc"), r.all("X-Server")),
                         (404, ["h"], ["main"]))
        self.assertEqual(self.get("/dir").all("X-Frame-Options"),
                         ["DENY"])
        # the server's own where no location matches
        r = self.get("/index.html")
        self.assertEqual((r.all("X-Server"), r.all("X-Loc")), (["main"], []))

    def test_expires_and_cache_control(self):
        r = self.get("/cache/x.txt")
        self.assertEqual(r.all("Cache-Control"), ["max-age=3600"])
        exp = email.utils.parsedate_to_datetime(r.header("Expires"))
        date = email.utils.parsedate_to_datetime(r.header("Date"))
        self.assertAlmostEqual((exp - date).total_seconds(), 3600, delta=2)
        r = self.get("/cc/x.txt")
        self.assertEqual(r.all("Cache-Control"),
                         ["public, max-age=60, immutable"])
        self.assertIsNone(r.header("Expires"))
        r = self.get("/ccx/x.txt")
        self.assertEqual(r.all("Cache-Control"), ["no-cache"])
        exp = email.utils.parsedate_to_datetime(r.header("Expires"))
        self.assertAlmostEqual(exp.timestamp() - time.time(), 7200,
                               delta=5)
        # none elsewhere, and an error is not made cacheable
        self.assertIsNone(self.get("/file.txt").header("Cache-Control"))
        r = self.get("/cache/missing")
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.header("Cache-Control"))
        self.assertIsNone(r.header("Expires"))

    def test_hsts_only_on_tls(self):
        r = self.get("/file.txt")
        self.assertIsNone(r.header("Strict-Transport-Security"))
        r = tls_get(self.tport, "/file.txt")
        self.assertEqual((r.status, r.body), (200, FILE))
        self.assertEqual(r.header("Strict-Transport-Security"),
                         "max-age=86400; includeSubDomains")
        r = tls_get(self.tport, "/missing")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("Strict-Transport-Security"),
                         "max-age=86400; includeSubDomains")

    def test_custom_error_pages(self):
        r = self.get("/e404/missing")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b"<p>custom 404 page</p>\n")
        self.assertEqual(r.header("Content-Type"), "text/html; "
                         "charset=utf-8")
        # the server's 403 page, and a location's own in its place
        self.assertEqual(self.get("/noindex/").body,
                         b"<p>custom 403 page</p>\n")
        r = self.get("/e403/noidx/")
        self.assertEqual((r.status, r.body),
                         (403, b"<p>location 403 page</p>\n"))
        # the server's page, beneath the server's root, in a location
        # with an alias of its own
        r = self.get("/static/sub/")
        self.assertEqual((r.status, r.body),
                         (403, b"<p>custom 403 page</p>\n"))
        # elsewhere the built-in page
        r = self.get("/missing")
        self.assertEqual(r.status, 404)
        self.assertIn(b"404 Not Found", r.body)
        self.assertNotIn(b"custom", r.body)

    def test_fifo_refused_without_waiting_for_a_writer(self):
        """Opening a FIFO for reading waits for a writer: a worker that
        did would serve nobody else."""
        t = time.monotonic()
        self.assertEqual(self.get("/pipe").status, 403)
        # a FIFO in place of a precompressed sibling: the plain file
        r = self.get("/gz/pipe.js", headers=[("Accept-Encoding", "gzip")])
        self.assertEqual((r.status, r.body), (200, b"plain pipe.js\n"))
        self.assertLess(time.monotonic() - t, 3)
        self.assertEqual(self.get("/file.txt").status, 200)

    def test_dotfiles_and_types(self):
        self.assertEqual(self.get("/.secret").status, 404)
        self.assertEqual(self.get("/dir/../.secret").status, 404)
        self.assertEqual(self.get("/.well-known/acme.txt").body, b"acme\n")
        self.assertEqual(self.get("/dots/.hidden").body,
                         b"hidden but allowed\n")
        for path, ct in (("/file.txt", "text/plain; charset=utf-8"),
                         ("/latin/x.txt", "text/plain; charset=iso-8859-1"),
                         ("/big.bin", "application/octet-stream"),
                         ("/noext", "application/octet-stream"),
                         ("/x.wtest", "application/x-webd-test"),
                         ("/notes.md", "text/x-md-test; charset=utf-8"),
                         ("/app.js", "text/javascript; charset=utf-8"),
                         ("/index.html", "text/html; charset=utf-8")):
            self.assertEqual(self.get(path).header("Content-Type"), ct,
                             path)

    def test_empty_and_big_files_on_one_connection(self):
        with Conn(self.port) as c:
            for path, data in (("/empty.txt", b""), ("/big.bin", BIG),
                               ("/file.txt", FILE), ("/big.bin", BIG)):
                r = c.request("GET", path, host="main.test")
                self.assertEqual((r.status, r.body), (200, data), path)
                self.assertEqual(r.header("Content-Length"), str(len(data)))

    def test_allow_deny(self):
        def st(path, source):
            with Conn(self.port, source=source) as c:
                return c.request("GET", path, [("Connection", "close")],
                                 host="main.test").status
        # the first rule that matches decides
        self.assertEqual(st("/private/x.txt", "127.0.0.1"), 200)
        self.assertEqual(st("/private/x.txt", "127.0.0.2"), 403)
        # a deny-only list lets the others in
        self.assertEqual(st("/nobad/x.txt", "127.0.0.2"), 200)
        self.assertEqual(st("/nobad/x.txt", "127.0.0.3"), 403)
        # and only its location is guarded; X-Forwarded-For from a peer
        # that is not a trusted proxy changes nothing
        self.assertEqual(st("/file.txt", "127.0.0.3"), 200)
        with Conn(self.port, source="127.0.0.2") as c:
            r = c.request("GET", "/private/x.txt", [
                ("X-Forwarded-For", "127.0.0.1"), ("Connection", "close")],
                host="main.test")
        self.assertEqual(r.status, 403)
        self.assertNotIn(b"private", r.body)
