"""Operating webd: access-log lines in the real syslog (every Combined
Log Format field parsed, escaping), the common and forwarded formats,
the real client address from a trusted proxy only, the file access log
and its reopen on SIGUSR1 after a rename, metrics on their own listener
(requests by site and class, bytes, the duration histogram), `webd -n`
on good and broken confs, workers as the conf's user and chrooted."""
import datetime
import os
import pwd
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import (SLOW, busy_poll_check, dead_port, free_port,
                     proc_status, wait_for, wait_port)
from httpc import Closed, Conn, HttpTest, get, request_bytes
from webdtest import (clf, metric, metrics, parse_response, raw,
                      raw_request, webd_conf, write)

SITE = """
server "main" default {{
	listen 127.0.0.1:{port}
	root "@DIR@/www"
	location "/api/" {{
		proxy up
	}}
}}
server "other" {{
	listen 127.0.0.1:{port}
	name "other.test"
	root "@DIR@/www"
}}
upstream up {{
	server down 127.0.0.1:{dead}
	retries 0
}}
"""


class OpsTest(HttpTest):
    def webd(self, extra="", workers=1, body=None):
        self.port = free_port()
        w = os.path.join(self.dir, "www")
        write(f"{w}/index.html", b"<p>index</p>\n")
        write(f"{w}/ten.txt", b"0123456789")
        write(f"{w}/big.txt", b"x" * 50000)
        write(f"{w}/huge.bin", b"h" * 4 * 1024 * 1024)
        body = (body or SITE).format(port=self.port, dead=dead_port())
        d = self.daemon("webd", webd_conf(body, workers, extra))
        d.start()
        wait_port("127.0.0.1", self.port)
        return d

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def log_line(self, d, pattern, timeout=5):
        """The access-log line of webd <d>'s workers matching <pattern>."""
        pids = "|".join(str(w) for w in d.workers())
        return self.syslog.wait(rf"webd\[(?:{pids})\]: \S+ .*{pattern}",
                                timeout)

    # access log in syslog

    def test_access_log_combined_in_syslog(self):
        d = self.webd()
        ua = 'Mozilla/5.0 "quoted" back\\slash caf\u00e9'
        self.get("/ten.txt?a=1&b=2", headers=[
            ("Referer", "http://ref.test/page?x=\"y\""),
            ("User-Agent", ua.encode().decode("latin-1"))],
            source="127.0.0.7")
        self.get("/missing", source="127.0.0.8")
        r = self.get("/big.txt", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.get("/missing-head", method="HEAD").status,
                         404)
        self.get("/ten.txt", headers=[("Range", "bytes=2-4")])
        with Conn(self.port) as c:
            r = c.request("GET", "/", host="other.test", version="HTTP/1.0")
        now = datetime.datetime.now(datetime.timezone.utc)

        f = clf(self.log_line(d, r"GET /ten\.txt\?a=1"))
        self.assertEqual(f["site"], "main")
        self.assertEqual(f["client"], "127.0.0.7")
        self.assertEqual(f["request"], "GET /ten.txt?a=1&b=2 HTTP/1.1")
        self.assertEqual((f["status"], f["bytes"]), ("200", "10"))
        self.assertEqual(f["referer"], "http://ref.test/page?x=\\x22y\\x22")
        self.assertEqual(f["ua"], "Mozilla/5.0 \\x22quoted\\x22 "
                         "back\\x5cslash caf\\xc3\\xa9")
        t = datetime.datetime.strptime(f["time"], "%d/%b/%Y:%H:%M:%S %z")
        self.assertLess(abs((t - now).total_seconds()), 10)

        f = clf(self.log_line(d, r"GET /missing"))
        self.assertEqual((f["client"], f["status"], f["referer"], f["ua"]),
                         ("127.0.0.8", "404", "-", "-"))
        self.assertGreater(int(f["bytes"]), 0)
        f = clf(self.log_line(d, r"HEAD /big\.txt"))
        self.assertEqual((f["status"], f["bytes"]), ("200", "0"))
        # an error page's body is not sent to a HEAD: not counted
        f = clf(self.log_line(d, r"HEAD /missing-head"))
        self.assertEqual((f["status"], f["bytes"]), ("404", "0"))
        f = clf(self.log_line(d, r"GET /ten\.txt HTTP"))
        self.assertEqual((f["status"], f["bytes"]), ("206", "3"))
        f = clf(self.log_line(d, r'"GET / HTTP/1\.0"'))
        self.assertEqual((f["site"], f["status"]), ("other", "200"))
        # a proxied request is logged once, with the proxy's status
        self.get("/api/x")
        ln = self.log_line(d, r"GET /api/x")
        self.assertEqual(clf(ln)["status"], "502")
        self.assertEqual(len([x for x in self.syslog.lines()
                              if "GET /api/x" in x]), 1)
        # every line is one syslog line: nothing of the request breaks it
        for ln in self.syslog.lines():
            if re.search(rf"webd\[({'|'.join(map(str, d.workers()))})\]: "
                         "(main|other) ", ln):
                clf(ln)

    def test_ipv6_listener_access_list_and_log(self):
        """webd on [::1] and 127.0.0.1 at once (IPV6_V6ONLY: the two
        never clash), an IPv6 allow list, the client logged as ::1."""
        self.port = free_port()
        write(os.path.join(self.dir, "www", "ten.txt"), b"0123456789")
        d = self.daemon("webd", webd_conf(f"""
server "six" {{
	listen [::1]:{self.port}
	listen 127.0.0.1:{self.port}
	root "@DIR@/www"
	location "/v6only/" {{
		allow ::1
		deny 0.0.0.0/0
	}}
}}
"""))
        d.start()
        wait_port("::1", self.port)

        def curl(path):
            return subprocess.run(
                ["curl", "-sS", "-g", "--max-time", "10", "-o", "/dev/null",
                 "-w", "%{http_code}",
                 f"http://[::1]:{self.port}{path}"],
                stdout=subprocess.PIPE, timeout=20).stdout.decode()
        self.assertEqual(curl("/ten.txt"), "200")
        self.assertEqual(curl("/v6only/x"), "404")
        self.assertEqual(self.get("/v6only/x").status, 403)
        self.assertEqual(self.get("/ten.txt").body, b"0123456789")
        f = clf(self.log_line(d, r'"GET /ten\.txt HTTP/1\.1" 200 10'))
        f = clf(self.log_line(d, r'"GET /v6only/x HTTP/1\.1" 404'))
        self.assertEqual(f["client"], "::1")

    def test_request_line_escaped(self):
        d = self.webd()
        raw_request(self.port, b'/a"b\\c')
        ln = self.log_line(d, r"GET /a")
        f = clf(ln)
        self.assertEqual(f["request"], "GET /a\\x22b\\x5cc HTTP/1.1")
        self.assertEqual(f["status"], "400")

    # What the engine answers alone -- malformed heads (400), 408, 413,
    # 414, 431 -- reaches webd's access log through the bad_request hook.
    def test_requests_refused_by_the_engine_logged(self):
        d = self.webd()
        out = raw(self.port, b"GET / HTTP/1.1\r\nHost: a\r\n"
                  b"User-Agent: x\x7fy\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:40])
        # its request line, as far as it came, and the body it got
        f = clf(self.log_line(d, r'"GET / HTTP/1\.1" 400 ', timeout=1))
        self.assertEqual((f["site"], f["client"], f["bytes"]),
                         ("-", "127.0.0.1", str(len("400 Bad Request\n"))))
        out = raw(self.port, b"\x01\x02 nonsense\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:40])
        f = clf(self.log_line(d, r'"\\x01\\x02 nonsense" 400', timeout=1))
        self.assertEqual(f["site"], "-")

    # "listen ... proxy-protocol": a trusted peer must send a PROXY
    # header first; its client address is then the one logged.
    def test_proxy_protocol_from_trusted_proxy(self):
        d = self.webd(extra="trusted-proxy 127.0.0.1", body="""
server "main" {{
	listen 127.0.0.1:{port} proxy-protocol
	root "@DIR@/www"
}}
""")
        # without the header, a trusted peer is cut off (as HAProxy does)
        out = raw(self.port, request_bytes("GET", "/ten.txt", [
            ("Connection", "close")]), timeout=2)
        self.assertEqual(out, b"")
        out = raw(self.port, b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"
                  + request_bytes("GET", "/ten.txt?pp",
                                  [("Connection", "close")]), timeout=2)
        r = parse_response(out)
        self.assertEqual((r.status, r.body), (200, b"0123456789"))
        self.assertEqual(clf(self.log_line(d, "pp", timeout=1))["client"],
                         "203.0.113.7")

    def test_common_and_forwarded_formats_and_facility(self):
        d = self.webd(extra="access-log syslog format common facility "
                      "local5")
        self.get("/ten.txt", headers=[("User-Agent", "ua-common")])
        ln = self.log_line(d, r"GET /ten\.txt")
        self.assertIn(" local5.info ", ln)
        f = clf(ln)
        self.assertIsNone(f["ua"])
        self.assertNotIn("ua-common", ln)
        self.assertTrue(ln.endswith('" 200 10'), ln)
        d.stop()
        d = self.webd(extra="access-log syslog format forwarded")
        self.get("/ten.txt", headers=[("X-Forwarded-For", "203.0.113.5"),
                                      ("User-Agent", "ua-fw")])
        f = clf(self.log_line(d, r"GET /ten\.txt"))
        self.assertEqual((f["ua"], f["xff"]), ("ua-fw", "203.0.113.5"))
        # not trusted: the peer is the client
        self.assertEqual(f["client"], "127.0.0.1")
        # several lines are one list (RFC 9110 5.3): all of it, escaped
        self.get("/ten.txt?two", headers=[("X-Forwarded-For", "1.1.1.1"),
                                          ("X-Forwarded-For", '"2')])
        f = clf(self.log_line(d, r"GET /ten\.txt\?two"))
        self.assertEqual(f["xff"], "1.1.1.1, \\x222")

    def test_client_address_from_trusted_proxy_only(self):
        d = self.webd(extra="trusted-proxy 127.0.0.2 10.0.0.0/8")
        xff = "198.51.100.1, 203.0.113.9, 10.1.1.1"
        self.get("/ten.txt?from-trusted", source="127.0.0.2",
                 headers=[("X-Forwarded-For", xff)])
        self.get("/ten.txt?from-other", source="127.0.0.3",
                 headers=[("X-Forwarded-For", xff)])
        # the last address not itself trusted
        self.assertEqual(clf(self.log_line(d, "from-trusted"))["client"],
                         "203.0.113.9")
        self.assertEqual(clf(self.log_line(d, "from-other"))["client"],
                         "127.0.0.3")

    def test_client_from_the_last_of_several_forwarded_lines(self):
        """A proxy that adds a line of its own (HAProxy's forwardfor)
        rather than appending to the client's: the client's own line
        must not decide, and the access list judges the right address."""
        body = SITE.replace('root "@DIR@/www"\n\tlocation',
                            'root "@DIR@/www"\n\tallow 10.0.0.0/8\n'
                            '\tdeny 0.0.0.0/0\n\tlocation', 1)
        d = self.webd(extra="trusted-proxy 127.0.0.2", body=body)
        xff = [("X-Forwarded-For", "10.1.1.1"),
               ("X-Forwarded-For", "198.51.100.7")]
        r = self.get("/ten.txt?two-lines", source="127.0.0.2", headers=xff)
        self.assertEqual(r.status, 403)
        self.assertEqual(clf(self.log_line(d, "two-lines"))["client"],
                         "198.51.100.7")
        # the trusted proxy's own address in the last line is skipped
        xff = [("X-Forwarded-For", "10.2.2.2"),
               ("X-Forwarded-For", "127.0.0.2")]
        r = self.get("/ten.txt?skip-proxy", source="127.0.0.2", headers=xff)
        self.assertEqual(r.status, 200)
        self.assertEqual(clf(self.log_line(d, "skip-proxy"))["client"],
                         "10.2.2.2")

    def unix_get(self, sock, target, headers=()):
        return parse_response(raw(sock, request_bytes("GET", target,
                                                      headers)))

    def test_access_list_on_a_unix_listener(self):
        """A client that comes through a unix socket is not let past an
        allow list for want of an address; with trusted-proxy unix, its
        X-Forwarded-For names it."""
        sock = os.path.join(self.dir, "webd.sock")
        body = SITE.replace("listen 127.0.0.1:{port}\n\troot",
                            f'listen 127.0.0.1:{{port}}\n\tlisten '
                            f'"unix:{sock}" mode 0666\n\troot', 1)
        body = body.replace('root "@DIR@/www"\n\tlocation',
                            'root "@DIR@/www"\n\tallow 10.0.0.0/8\n'
                            '\tlocation', 1)
        fwd = [("X-Forwarded-For", "10.9.9.9"), ("Connection", "close")]
        d = self.webd(body=body)
        self.assertEqual(self.unix_get(sock, "/ten.txt?u1", fwd).status, 403)
        d.stop()
        d = self.webd(extra="trusted-proxy unix", body=body)
        r = self.unix_get(sock, "/ten.txt?u2", fwd)
        self.assertEqual((r.status, r.body), (200, b"0123456789"))
        self.assertEqual(clf(self.log_line(d, "u2"))["client"], "10.9.9.9")
        r = self.unix_get(sock, "/ten.txt?u3",
                          [("X-Forwarded-For", "198.51.100.7"),
                           ("Connection", "close")])
        self.assertEqual(r.status, 403)
        r = self.unix_get(sock, "/ten.txt?u4", [("Connection", "close")])
        self.assertEqual(r.status, 403)
        # TCP peers are not trusted by "unix"
        r = self.get("/ten.txt?u5", headers=[("X-Forwarded-For",
                                               "10.9.9.9")])
        self.assertEqual(r.status, 403)

    def test_peer_allow_judges_the_peer_not_the_client(self):
        """peer-allow closes a connection from another peer unread, even
        when it forwards an allowed client; the server's allow list
        still judges the client that a trusted peer forwards."""
        body = SITE.replace('root "@DIR@/www"\n\tlocation',
                            'root "@DIR@/www"\n\tallow 203.0.113.9\n'
                            '\tlocation', 1)
        d = self.webd(extra="trusted-proxy 127.0.0.2\npeer-allow 127.0.0.2",
                      body=body)
        xff = [("X-Forwarded-For", "203.0.113.9")]
        r = self.get("/ten.txt?peer-ok", source="127.0.0.2", headers=xff)
        self.assertEqual((r.status, r.body), (200, b"0123456789"))
        self.assertEqual(clf(self.log_line(d, "peer-ok"))["client"],
                         "203.0.113.9")
        # a forwarded client the server's list does not allow
        r = self.get("/ten.txt", source="127.0.0.2",
                     headers=[("X-Forwarded-For", "198.51.100.7")])
        self.assertEqual(r.status, 403)
        # another peer, even naming the allowed client: nothing at all
        for src in ("127.0.0.1", "127.0.0.3"):
            s = socket.socket()
            s.bind((src, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", self.port))
            try:
                s.sendall(request_bytes("GET", "/ten.txt", xff))
                got = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            finally:
                s.close()
            self.assertEqual(got, b"", src)

    # access log in a file

    def test_file_access_log_reopened_on_sigusr1(self):
        # the hardest case: workers chrooted to the document root, the
        # log outside it, and not theirs to create
        log = os.path.join(self.dir, "logs", "access.log")
        os.makedirs(os.path.dirname(log))
        d = self.webd(extra=f'user www-data\naccess-log "{log}"\n'
                      f'chroot "{self.dir}/www"', workers=2)
        self.get("/ten.txt?one")
        wait_for(lambda: os.path.exists(log) and
                 b"one" in open(log, "rb").read(), 5, what="line one")
        self.assertEqual(os.stat(log).st_uid, pwd.getpwnam("www-data").pw_uid)
        os.rename(log, log + ".1")
        # still the old file (the same descriptor) until told
        self.get("/ten.txt?two")
        wait_for(lambda: b"two" in open(log + ".1", "rb").read(), 5,
                 what="line two in the renamed file")
        self.assertFalse(os.path.exists(log))
        d.signal(signal.SIGUSR1)
        self.syslog.wait(rf"webd\[{d.pid}\]: reopening log files")
        wait_for(lambda: os.path.exists(log), 5, what="the new log file")
        # every worker now writes the new file.  The master creates it
        # before it tells the workers, so a request served in between
        # may still go to the old one: batches until one lands whole in
        # the new file, and no line lost on the way
        sent, batch = [], 0

        def whole_batch():
            nonlocal batch
            tags = [f"three-{batch}-{i}" for i in range(20)]
            batch += 1
            for t in tags:
                self.get(f"/ten.txt?{t}")
                sent.append(t)
            time.sleep(0.2)
            new = open(log, "rb").read().decode()
            return all(f"?{t} " in new for t in tags)
        wait_for(whole_batch, 10, what="a batch wholly in the new file")
        new = open(log, "rb").read().decode()
        old = open(log + ".1", "rb").read().decode()
        for t in sent:
            self.assertEqual((new + old).count(f"?{t} "), 1, t)
        for ln in new.splitlines():
            f = clf("main " + ln)
            self.assertEqual(f["status"], "200")
        # nothing went to syslog
        self.assertFalse([x for x in self.syslog.lines() if "?three-" in x])

    def test_log_reopen_follows_no_link(self):
        """The log's folder may be the workers' to write in: a link put
        in the log's place must not make the master, root, open and give
        the workers another file."""
        logs = os.path.join(self.dir, "logs")
        log = os.path.join(logs, "access.log")
        os.makedirs(logs)
        os.chown(logs, pwd.getpwnam("www-data").pw_uid, -1)
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write("root only\n")
        os.chmod(secret, 0o600)
        d = self.webd(extra=f'user www-data\naccess-log "{log}"')
        self.get("/ten.txt?before")
        wait_for(lambda: os.path.exists(log) and
                 b"before" in open(log, "rb").read(), 5, what="line one")
        os.rename(log, log + ".1")
        os.symlink(secret, log)
        d.signal(signal.SIGUSR1)
        self.syslog.wait(rf"webd\[{d.pid}\]: reopen access log {log}: "
                         "Too many levels of symbolic links")
        self.get("/ten.txt?after")
        # the lines go on to the old file; the link's target is untouched
        wait_for(lambda: b"after" in open(log + ".1", "rb").read(), 5,
                 what="the line after in the old file")
        st = os.stat(secret)
        self.assertEqual((st.st_uid, open(secret).read()), (0, "root only\n"))
        # a FIFO in its place is refused, not waited on
        os.unlink(log)
        os.mkfifo(log)
        d.signal(signal.SIGUSR1)
        self.syslog.wait(rf"webd\[{d.pid}\]: reopen access log {log}: "
                         "(No such device or address|not a regular file)")
        self.assertEqual(self.get("/ten.txt?fifo").status, 200)
        # once a file can be made again, the reopen works
        os.unlink(log)
        d.signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(log), 5, what="the new log file")
        self.assertEqual(os.stat(log).st_uid,
                         pwd.getpwnam("www-data").pw_uid)

    def test_workers_never_create_the_log(self):
        """Only the master creates the log: a worker told of a reopen
        late, when the file is gone again, makes none of its own (in a
        folder it may write to) and keeps writing to the one it has."""
        logs = os.path.join(self.dir, "logs")
        log = os.path.join(logs, "access.log")
        os.makedirs(logs)
        os.chown(logs, pwd.getpwnam("www-data").pw_uid, -1)
        d = self.webd(extra=f'user www-data\naccess-log "{log}"',
                      workers=1)
        w = d.wait_workers(1)[0]
        self.get("/ten.txt?one")
        wait_for(lambda: os.path.exists(log) and
                 b"one" in open(log, "rb").read(), 5, what="line one")
        os.kill(w, signal.SIGSTOP)
        try:
            os.rename(log, log + ".1")
            d.signal(signal.SIGUSR1)
            wait_for(lambda: os.path.exists(log), 5, what="the master's")
            os.rename(log, log + ".2")
        finally:
            os.kill(w, signal.SIGCONT)
        self.syslog.wait(rf"webd\[{w}\]: worker 1: reopen access log "
                         rf"{log}: No such file or directory")
        self.get("/ten.txt?two")
        wait_for(lambda: b"two" in open(log + ".1", "rb").read(), 5,
                 what="the line in the file the worker had")
        self.assertFalse(os.path.exists(log))

    # metrics

    def test_metrics_on_own_listener(self):
        mport = free_port()
        d = self.webd(extra=f"metrics 127.0.0.1:{mport}\n"
                      "metrics-allow 127.0.0.1")
        wait_port("127.0.0.1", mport)
        for _ in range(3):
            self.assertEqual(self.get("/ten.txt").status, 200)
        for _ in range(2):
            self.assertEqual(self.get("/missing").status, 404)
        self.assertEqual(self.get("/big.txt", host="other.test").status,
                         200)
        self.assertEqual(self.get("/api/x").status, 502)
        nf = len(self.get("/missing").body)
        # one slow answer: a client that waits before reading 4 MB
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        with Conn(self.port, sock=s) as c:
            c.send(request_bytes("GET", "/huge.bin"))
            time.sleep(0.4)
            r = c.read_response()
            self.assertEqual(len(r.body), 4 * 1024 * 1024)
        # a request the engine refuses, for want of a site, under "-"
        out = raw(self.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:40])
        ms, text = metrics(mport)
        self.assertEqual(metric(ms, "webd_requests_total", site="-",
                                code="4xx"), 1)
        # the absolute form of the metrics' target (RFC 9112 3.2.2)
        out = raw(mport, f"GET http://127.0.0.1:{mport}/metrics HTTP/1.1"
                  "\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:60])
        self.assertIn(b"webd_requests_total", out)
        self.assertEqual(metric(ms, "webd_response_bytes_total", site="-"),
                         len("400 Bad Request\n"))
        self.assertIn("# TYPE webd_requests_total counter", text)
        self.assertIn("# TYPE webd_request_duration_seconds histogram",
                      text)
        self.assertEqual(metric(ms, "webd_requests_total", site="main",
                                code="2xx"), 4)
        self.assertEqual(metric(ms, "webd_requests_total", site="main",
                                code="4xx"), 3)
        self.assertEqual(metric(ms, "webd_requests_total", site="main",
                                code="5xx"), 1)
        self.assertEqual(metric(ms, "webd_requests_total", site="other",
                                code="2xx"), 1)
        self.assertEqual(metric(ms, "webd_requests_total", site="other",
                                code="4xx"), 0)
        self.assertEqual(metric(ms, "webd_response_bytes_total",
                                site="other"), 50000)
        self.assertEqual(metric(ms, "webd_response_bytes_total",
                                site="main"),
                         30 + 3 * nf + 4 * 1024 * 1024 +
                         len(self.get("/api/x").body))
        self.assertEqual(metric(ms, "webd_upstream_errors_total",
                                upstream="up"), 1)
        # the histogram: cumulative buckets, +Inf = count, a sum
        buckets = sorted(
            ((float(dict(k[1])["le"]), v) for k, v in ms.items()
             if k[0] == "webd_request_duration_seconds_bucket" and
             dict(k[1]).get("site") == "main"), key=lambda x: x[0])
        self.assertGreater(len(buckets), 3)
        self.assertEqual(buckets[-1][0], float("inf"))
        vals = [v for le, v in buckets]
        self.assertEqual(vals, sorted(vals))
        count = metric(ms, "webd_request_duration_seconds_count",
                       site="main")
        self.assertEqual(count, 8)
        self.assertEqual(vals[-1], count)
        le = dict(buckets)
        self.assertGreaterEqual(le[0.1], 7)     # fast local answers
        self.assertEqual(le[0.25], 7)           # but the slow one
        self.assertGreaterEqual(metric(
            ms, "webd_request_duration_seconds_sum", site="main"), 0.3)
        self.assertGreaterEqual(metric(ms, "webd_connections"), 0)
        # a connection held open shows
        with Conn(self.port) as c:
            c.request("GET", "/ten.txt")
            wait_for(lambda: metric(metrics(mport)[0], "webd_connections")
                     >= 1, 5, what="webd_connections to count it")
        # the metrics listener is not the site, nor the site the metrics
        self.assertEqual(get(self.port, "/metrics").status, 404)
        self.assertEqual(get(mport, "/ten.txt").status, 404)
        # metrics-allow: others are turned away
        try:
            r = get(mport, "/metrics", source="127.0.0.9", timeout=2)
            denied = r.status == 403
        except (OSError, Closed):
            denied = True
        self.assertTrue(denied, "metrics served to a peer not allowed")

    def test_a_stalled_client_holds_little_unsent(self):
        """A file body is queued a little at a time (TCP_NOTSENT_LOWAT),
        not megabytes deep in the send buffer: a client that stops
        reading holds little kernel memory, and gets every byte when it
        reads again."""
        self.webd()
        s = socket.socket()
        # a fixed window, so that the file cannot all fit in it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", self.port))
        lp = s.getsockname()[1]

        def notsent():
            out = subprocess.run(
                ["ss", "-tinH", "state", "established",
                 f"( sport = :{self.port} and dport = :{lp} )"],
                stdout=subprocess.PIPE, text=True, timeout=5).stdout
            m = re.search(r"notsent:(\d+)", out)
            return int(m.group(1)) if m else 0

        with Conn(self.port, sock=s) as c:
            c.send(request_bytes("GET", "/huge.bin"))
            # the peer's window fills, then the unsent queue stops growing
            seen = []
            for _ in range(10):
                time.sleep(0.1)
                seen.append(notsent())
            self.assertGreater(max(seen), 0, "nothing waited unsent")
            # the bound, plus the one segment (64 KiB on loopback) that
            # may be queued past it
            self.assertLessEqual(max(seen), 96 * 1024, seen)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"h" * 4 * 1024 * 1024)

    # the conf

    def test_busy_poll(self):
        # busy-poll, in the event loop lbd shares
        def start(extra):
            d = self.webd(extra=extra)
            (w,) = d.wait_workers(1)
            c = Conn(self.port)

            def request():
                self.assertEqual(c.request("GET", "/ten.txt").status, 200)

            def stop():
                c.close()
                d.stop()
            return w, [], request, stop
        busy_poll_check(self, start)

    def test_reload_and_log_reopen_together_from_a_relative_conf(self):
        # started as an operator would, from the conf's folder with a
        # relative -f (the master then moves to /), reloaded over and
        # over while SIGUSR1 (logrotate's reopen) comes many times a
        # second: every reload must find its conf, and no child may die
        # of a SIGUSR1 that came before it watched for it
        d = self.webd(workers=2)
        d.stop()
        rel = os.path.basename(d.conf_path)
        subprocess.run([d.prog, "-f", rel], cwd=self.dir, check=True,
                       timeout=20 * SLOW)
        d.pid = wait_for(d.read_pidfile, 5, what="the pidfile")
        d.wait_workers()
        self.syslog.mark()
        stop = time.time() + 3 * SLOW
        reloads = 0
        while time.time() < stop:
            d.signal(signal.SIGHUP)
            reloads += 1
            for _ in range(50):
                d.signal(signal.SIGUSR1)
                time.sleep(0.002)
        self.syslog.wait(rf"webd\[{d.pid}\]: reload done", 5)
        time.sleep(0.5)
        self.assertEqual(self.get("/ten.txt").body, b"0123456789")
        mine = [x for x in self.syslog.lines() if f"webd[{d.pid}]" in x]
        self.assertFalse([x for x in mine if "killed by signal" in x or
                          "reload failed" in x], mine[-20:])
        self.assertTrue([x for x in mine if "reload done" in x])
        print(f"{reloads} reloads with SIGUSR1 every 2ms")
        d.stop()

    def test_tls_default_server_certificate_and_exact_names_first(self):
        # a client that names no host, or one no certificate has, gets the
        # default server's certificate (not the first server's); a name
        # with its own certificate gets it even after a wildcard one
        from httpc import make_cert
        # (the default's certificate names *.w.test too, after w's in
        # the conf: wildcards go in the conf's order, default or not)
        for n, names in (("a", ["a.test"]), ("b", ["b.test", "*.w.test"]),
                         ("w", ["*.w.test"]), ("x", ["x.w.test"])):
            make_cert(self.dir, n, "ec", names)
        servers = "".join(f"""
server "{n}" {dflt} {{{{
	listen 127.0.0.1:{{port}} tls
	tls {{{{
		certificate "@DIR@/{n}.crt" key "@DIR@/{n}.key"
	}}}}
	name "{name}"
	root "@DIR@/www"
}}}}""" for n, dflt, name in (("a", "", "a.test"), ("w", "", "*.w.test"),
                              ("x", "", "x.w.test"),
                              ("b", "default", "b.test")))
        self.webd(body=servers)

        def subject(sni):
            args = ["openssl", "s_client", "-connect",
                    f"127.0.0.1:{self.port}"]
            args += ["-servername", sni] if sni else ["-noservername"]
            out = subprocess.run(args, input="", stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True,
                                 timeout=20 * SLOW).stdout
            m = re.search(r"^subject=.*CN ?= ?(\S+)", out, re.M)
            self.assertIsNotNone(m, out)
            return m.group(1)
        self.assertEqual(subject(None), "b.test")
        self.assertEqual(subject("unknown.test"), "b.test")
        self.assertEqual(subject("a.test"), "a.test")
        self.assertEqual(subject("b.test"), "b.test")
        self.assertEqual(subject("y.w.test"), "*.w.test")
        self.assertEqual(subject("x.w.test"), "x.w.test")

        # a session made under one name resumes under that name only
        # (RFC 6066 3), in TLS 1.3 and 1.2
        def resume(sni, version, sess_in=None, sess_out=None):
            args = ["openssl", "s_client", "-connect",
                    f"127.0.0.1:{self.port}", "-servername", sni, version,
                    "-ign_eof"]
            if sess_in:
                args += ["-sess_in", sess_in]
            if sess_out:
                args += ["-sess_out", sess_out]
            out = subprocess.run(
                args, input=f"GET / HTTP/1.1\r\nHost: {sni}\r\n"
                "Connection: close\r\n\r\n", stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
                timeout=20 * SLOW).stdout
            self.assertIn("HTTP/1.1 ", out)
            return "Reused," in out, re.search(r"^subject=.*CN ?= ?(\S+)",
                                                out, re.M)
        for version in ("-tls1_3", "-tls1_2"):
            sess = os.path.join(self.dir, f"a{version}.sess")
            self.assertFalse(resume("a.test", version, sess_out=sess)[0])
            self.assertTrue(resume("a.test", version, sess_in=sess)[0],
                            version)
            reused, m = resume("b.test", version, sess_in=sess)
            self.assertFalse(reused, version)
            self.assertEqual(m.group(1) if m else None, "b.test", version)
            reused, m = resume("y.w.test", version, sess_in=sess)
            self.assertFalse(reused, version)

    def test_reload_tls_errors_name_their_own_cause(self):
        # a reload refused for a key that does not match, then one for a
        # certificate that is missing: the second error must say so (it
        # said "key values mismatch", left over from the first)
        from httpc import make_cert
        make_cert(self.dir, "one", "ec", ["one.test"])
        make_cert(self.dir, "two", "ec", ["two.test"])
        site = """
server "s" default {{{{
	listen 127.0.0.1:{{port}} tls
	tls {{{{
		certificate "@DIR@/{crt}" key "@DIR@/{key}"
	}}}}
	root "@DIR@/www"
}}}}"""
        d = self.webd(body=site.format(crt="one.crt", key="one.key"))
        port = self.port
        for crt, key, want in (("one.crt", "two.key", "mismatch"),
                               ("gone.crt", "one.key", "No such file")):
            self.syslog.mark()
            d.write_conf(webd_conf(site.format(crt=crt, key=key).format(
                port=port), 1, ""))
            d.signal(signal.SIGHUP)
            self.syslog.wait(rf"webd\[{d.pid}\]: reload failed", 5)
            err = [x for x in self.syslog.lines() if crt in x or key in x]
            self.assertTrue(err and want in err[0], err)

    def test_reload_to_a_missing_root_refused_on_its_line(self):
        # the master opens the roots before forking: a root that is not
        # there is the conf's error, with its line, and the old conf
        # goes on serving
        site = """
server "s" default {{{{
	listen 127.0.0.1:{{port}}
	root "@DIR@/{root}"
}}}}"""
        d = self.webd(body=site.format(root="www"))
        self.assertEqual(self.get("/ten.txt").body, b"0123456789")
        for root, want in (("gone", "No such file or directory"),
                           ("www/ten.txt", "not a directory")):
            self.syslog.mark()
            conf = webd_conf(site.format(root=root).format(port=self.port),
                             1, "")
            line = next(i + 1 for i, t in enumerate(conf.splitlines())
                        if t.strip().startswith("root "))
            d.write_conf(conf)
            d.signal(signal.SIGHUP)
            self.syslog.wait(rf"webd\[{d.pid}\]: reload failed", 5)
            self.syslog.wait(rf"webd\[{d.pid}\]: \S+:{line}: root "
                             rf"{re.escape(self.dir)}/{re.escape(root)}: "
                             rf"{want}", 1)
            self.assertEqual(self.get("/ten.txt").body, b"0123456789")
            rc, out = d.run("-n")
            self.assertEqual(rc, 1)
            self.assertIn(f":{line}: root ", out)

    def test_reload_mime_types_and_log_file_are_the_conf_s_own(self):
        """A refused reload changes nothing, also in the workers the
        master starts again afterwards; a conf without mime-types goes
        back to the built-in types."""
        write(f"{self.dir}/one.types", "application/x-one wtest\n")
        write(f"{self.dir}/two.types", "application/x-two wtest\n")
        write(f"{self.dir}/www/a.wtest", b"a")
        log1 = os.path.join(self.dir, "one.log")
        log2 = os.path.join(self.dir, "two.log")
        d = self.webd(extra=f'mime-types "{self.dir}/one.types"\n'
                      f'access-log "{log1}"')
        port = self.port
        self.assertEqual(self.get("/a.wtest").header("Content-Type"),
                         "application/x-one")
        # refused: its mime-types and log file would have been read and
        # opened before the error
        self.syslog.mark()
        d.write_conf(webd_conf(SITE.format(port=port, dead=dead_port()) +
                               "\nserver \"x\" {\n\tlisten 127.0.0.1:1\n"
                               "\tproxy nowhere\n}\n", 1,
                               f'mime-types "{self.dir}/two.types"\n'
                               f'access-log "{log2}"'))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"webd\[{d.pid}\]: reload failed", 5)
        old = d.workers()
        self.killed = [old[0]]
        os.kill(old[0], signal.SIGKILL)
        wait_for(lambda: d.workers() and d.workers() != old, 5,
                 what="a new worker")
        wait_port("127.0.0.1", port)
        r = self.get("/a.wtest?after-refused")
        self.assertEqual(r.header("Content-Type"), "application/x-one")
        wait_for(lambda: b"after-refused" in open(log1, "rb").read(), 5,
                 what="the line in the running conf's log")
        self.assertFalse(os.path.exists(log2) and
                         b"after-refused" in open(log2, "rb").read())
        # accepted, without mime-types: the built-in table only
        d.write_conf(webd_conf(SITE.format(port=port, dead=dead_port()),
                               1, ""))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"webd\[{d.pid}\]: reload done", 5)
        wait_for(lambda: self.get("/a.wtest").header("Content-Type") ==
                 "application/octet-stream", 5, what="the built-in type")

    def test_configtest(self):
        d = self.daemon("webd", webd_conf(
            f'server "a" {{\n\tlisten 127.0.0.1:{free_port()}\n'
            f'\troot "{self.dir}"\n}}\n'), name="good")
        rc, out = d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"))
        p = d.conf_path
        cases = [
            # (conf after the head lines, line, message)
            ('lisen 1\nserver "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n}',
             5, 'unknown keyword "lisen"'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n\trooot "/"\n}',
             8, 'unknown keyword "rooot", did you mean "root"?'),
            ('server "a" {\n\tlisten 127.0.0.1:99999\n\troot "/"\n}',
             6, 'invalid address "127.0.0.1:99999": invalid port "99999" '
             '(1-65535)'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "rel"\n}',
             7, 'invalid root "rel": not an absolute path'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\terror-page 200 "/x"\n}', 8, 'invalid status 200 (400-599)'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\terror-page 404 "/../etc/passwd"\n}', 8, 'an error page is '
             'a path from the root, with no "..": /../etc/passwd'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\terror-page 404 "e/404.html"\n}', 8, 'an error page is '
             'a path from the root, with no "..": e/404.html'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tindex a/b\n}', 8, 'an index file is a name, not a path: '
             'a/b'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\theader "Bad Name" x\n}', 8, 'header "Bad Name": a field '
             'name is a token'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\theader Content-Length 5\n}', 8, 'header "Content-Length": '
             'a field the server writes itself'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\theader X-A "a\\nb"\n}', 8, 'header "X-A": control '
             'characters in the value'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "x" {\n\t}\n}', 8, 'a location is a path '
             'starting with "/", or a pattern starting with "/" or "*": '
             'x'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "/x" {\n\t\troot "/"\n\t\talias "/"\n\t}\n}', 10,
             'a location has root or alias, not both'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\tproxy nowhere\n}', 7,
             'no upstream "nowhere"'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n'
             '\treturn 301 "https://$hostname/"\n}', 7,
             'return: unknown variable "$hostname" (there are $scheme, '
             '$host and $request_uri)'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n}', 5,
             'server "a" needs a root, a proxy, a return or a location '
             '"/"'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files foo\n}', 8, 'try-files entry "foo": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"$url\"\n}', 8, 'try-files entry "$url": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"=200\"\n}', 8, 'try-files entry "=200": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"=404\" \"$uri\"\n}', 8, 'try-files entry "=404": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"$uri/../x\"\n}', 8, 'try-files entry "$uri/../x": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"$uri$args\"\n}', 8, 'try-files entry "$uri$args": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"@app\" \"$uri\"\n}', 8, 'try-files entry "@app": a '
             'path from the root, $uri, $uri/, $uri followed by a suffix'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\ttry-files \"$uri\" \"@nope\"\n}', 8,
             'try-files: no upstream "nope"'),
            ('upstream up {\n\tserver a 127.0.0.1:1\n}\n'
             'server "a" {\n\tlisten 127.0.0.1:1\n\tproxy up\n'
             '\ttry-files \"$uri\" \"@up\"\n}', 11,
             'try-files ending in an upstream and proxy: the one or the '
             'other'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tcharset "utf-8\\nSet-Cookie: a=b"\n}', 8,
             'invalid charset "utf-8'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "/x/" {\n\t}\n\tlocation "/x/" exact {\n\t}\n'
             '\tlocation "/x/" {\n\t}\n}', 12,
             'location "/x/" twice in server "a"'),
            ('server "a" default {\n\tlisten 127.0.0.1:1\n\troot "/"\n}\n'
             'server "b" default {\n\tlisten 127.0.0.1:2\n'
             '\tlisten 127.0.0.1:1\n\troot "/"\n}', 11,
             'server "a" and server "b" are both default on 127.0.0.1:1'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tname "*.example.org" "a.*.org"\n}', 8, 'invalid name '
             '"a.*.org": a host name or an address, or "*." and a name'),
            ('server "a b" {\n\tlisten 127.0.0.1:1\n\troot "/"\n}', 5,
             'invalid server name "a b": a host name or an address'),
            # "-" is the site of requests refused before one is known
            ('server "-" {\n\tlisten 127.0.0.1:1\n\troot "/"\n}', 5,
             'invalid server name "-": a host name or an address'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tname "dup.example"\n}\nserver "b" {\n'
             '\tlisten 127.0.0.1:1\n\troot "/"\n\tname "DUP.example"\n}',
             11, 'server "b": name "DUP.example" is server "a"\'s on '
             '127.0.0.1:1 already'),
            ('server "a" {\n\tlisten 127.0.0.1:1 tls\n\troot "/"\n}', 6,
             'listen ... tls needs a tls block in server "a"'),
            ('access-log "relative"\nserver "a" {\n\tlisten 127.0.0.1:1\n'
             '\troot "/"\n}', 5, 'access-log: syslog, off or an absolute '
             'path'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "/x" exact {\n\t\talias "/"\n\t}\n}', 8,
             'alias needs a prefix location, not an exact one'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "*.css" {\n\t\talias "/"\n\t}\n}', 8,
             'alias needs a prefix location, not a pattern'),
            ('server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
             '\tlocation "/a/*" exact {\n\t}\n}', 8,
             'location "/a/*" is a pattern (it has * ? or [), not an '
             'exact path'),
            ('server "a" {\n\tlisten 127.0.0.1:1 proxy-protocol\n'
             '\troot "/"\n}', 6, 'listen ... proxy-protocol needs '
             'trusted-proxy'),
        ]
        for body, line, msg in cases:
            d.write_conf(webd_conf(body))
            rc, out = d.run("-n")
            self.assertEqual(rc, 1, (body, out))
            self.assertIn(f"{p}:{line}: {msg}", out, body)
            self.assertNotIn("configuration OK", out)
        # every error is reported, then the count
        d.write_conf(webd_conf(
            'server "a" {\n\tlisten 127.0.0.1:1\n\troot "/"\n'
            '\tindex a/b\n\theader "B d" x\n\tproxy nowhere\n}'))
        rc, out = d.run("-n")
        self.assertEqual(rc, 1)
        for line in (8, 9, 10):
            self.assertIn(f"{p}:{line}: ", out)
        self.assertIn(f"{p}: 3 errors", out)

    def test_workers_as_conf_user_and_chrooted(self):
        www = pwd.getpwnam("www-data")
        w = os.path.join(self.dir, "www")
        write(f"{w}/rootonly.txt", b"secret\n", mode=0o600)
        d = self.webd(extra=f'user www-data\nchroot "{w}"', workers=2)
        workers = d.wait_workers(2)
        for pid in workers:
            # a worker just forked drops its privileges a moment later
            wait_for(lambda: set(proc_status(pid, "Uid")) ==
                     {str(www.pw_uid)}, 5 * SLOW,
                     what=f"worker {pid} to run as www-data")
            self.assertEqual(set(proc_status(pid, "Uid")), {str(www.pw_uid)})
            self.assertEqual(set(proc_status(pid, "Gid")), {str(www.pw_gid)})
            self.assertEqual(os.readlink(f"/proc/{pid}/root"), w)
        self.assertEqual(proc_status(d.pid, "Uid")[0], "0")
        # files are still found (the roots were opened by the master)
        self.assertEqual(self.get("/ten.txt").body, b"0123456789")
        # and the workers cannot read what only root may
        self.assertEqual(self.get("/rootonly.txt").status, 403)
