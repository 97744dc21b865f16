"""Helpers for lbd's integration tests (tests/integration/test_lbd_*.py):
testhttpd backends that name themselves in the Server field, an lbd in
front of them with its stats listener and control socket, and the
parsers the tests read lbd's answers with: the Prometheus exposition of
/metrics (checked line by line), the httplog and tcplog lines in the
test run's syslog, the stats page."""
import html.parser
import os
import re
import signal
import socket
import struct
import subprocess
import threading

from harness import (SLOW, alive, children, dead_port, free_port, wait_for,
                     wait_port)
from httpc import Closed, Conn, HttpTest, get, request_bytes

BACKEND = """
workers 1
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}{listen_extra}
server-name "{name}"
max-body-size 0
{extra}
"""

# an HTTP check that marks a server DOWN at its first failure; a live
# server's check must not time out on a slow machine
CHECK = (f"check http path /hello interval {200 * SLOW}ms "
         f"timeout {150 * SLOW}ms rise 1 fall 1")

LBD = """
workers {workers}
pidfile "@PIDFILE@"
control "@DIR@/lbd.sock"
stats 127.0.0.1:{stats}{stats_opts}
{top}
{body}
"""


def dead_addr():
    """An address where nothing listens (see harness.dead_port)."""
    return f"127.0.0.1:{dead_port()}"


def kill_now(d):
    """SIGKILL a daemon, its master first (so that it does not respawn
    its workers), then the workers."""
    procs = children(d.pid)
    os.kill(d.pid, signal.SIGKILL)
    for p in procs:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(alive(p) for p in procs + [d.pid]), 5,
             what=f"{d.name} to die")


class LbdTest(HttpTest):
    """Backends, an lbd in front, and ways to read what it says."""

    def backend(self, name, extra="", listen_extra=""):
        port = free_port()
        d = self.daemon("testhttpd", BACKEND.format(
            port=port, name=name, extra=extra, listen_extra=listen_extra),
            name=name)
        d.start()
        d.port = port
        d.addr = f"127.0.0.1:{port}"
        wait_port("127.0.0.1", port)
        return d

    def backends(self, *names, **kw):
        return [self.backend(n, **kw) for n in names]

    @staticmethod
    def server_lines(bs, opts=None):
        opts = opts or {}
        return "\n".join(f"    server {b.name} {b.addr} "
                         f"{opts.get(b.name, '')}".rstrip() for b in bs)

    def lbd_conf(self, body, workers=2, top="", stats_opts=""):
        return LBD.format(workers=workers, stats=self.stats, top=top,
                          body=body, stats_opts=stats_opts)

    def refused(self, body, line_text, msg, name="bad"):
        """lbd -n on a conf of <body> (frontends, backends) exits 1 and
        reports <msg> on the first line holding <line_text>."""
        d = self.daemon("lbd", self.lbd_conf(body), name=name)
        rc, out = d.run("-n")
        self.assertEqual(rc, 1, out)
        line = next(n for n, ln in enumerate(
            open(d.conf_path).read().splitlines(), 1) if line_text in ln)
        self.assertIn(f"{d.conf_path}:{line}: {msg}", out)

    def lbd(self, body, workers=2, top="", name="lbd", wait=True,
            stats_opts=""):
        """Start lbd with <body> (frontends, backends; "{port}" in it is
        self.port, a free port made here)."""
        self.port = getattr(self, "port", None) or free_port()
        self.stats = getattr(self, "stats", None) or free_port()
        body = body.replace("{port}", str(self.port))
        d = self.daemon("lbd", self.lbd_conf(body, workers, top, stats_opts),
                        name=name)
        d.start()
        d.wait_workers(workers)
        if wait:
            wait_port("127.0.0.1", self.port)
        wait_port("127.0.0.1", self.stats)
        self.lb = d
        self._seen = set(children(d.pid))
        self.sock = os.path.join(self.dir, "lbd.sock")
        return d

    def simple(self, bs, frontend="", backend="", opts=None, workers=2,
               top=""):
        """One frontend "www" on self.port, one backend "webs"."""
        return self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
{frontend}
}}
backend webs {{
{self.server_lines(bs, opts)}
{backend}
}}
""", workers=workers, top=top)

    def get(self, path="/hello", **kw):
        return get(self.port, path, **kw)

    def who(self, path="/hello", **kw):
        r = get(self.port, path, **kw)
        self.assertEqual(r.status, 200, r)
        return r.header("Server")

    def ctl(self, *words):
        p = subprocess.run([os.path.join(os.path.dirname(self.lb.prog),
                                         "lbdctl"), "-s", self.sock,
                            *words], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10 * SLOW)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def state(self, srv):
        """A server's state ("webs/web1") as lbdctl shows it."""
        rc, out, err = self.ctl("show", "servers")
        self.assertEqual(rc, 0, err)
        for ln in out.splitlines()[1:]:
            f = ln.split()
            if f"{f[0]}/{f[1]}" == srv:
                return f[3]
        raise AssertionError(f"no server {srv} in:\n{out}")

    def wait_state(self, srv, st, timeout=5.0):
        wait_for(lambda: self.state(srv) == st, timeout,
                 what=f"{srv} {st}")

    def metrics(self, settle=False):
        """/metrics, parsed.  With <settle>, once no client connection
        is open: a request is counted when it is done, which may be just
        after its client got the answer."""
        if not settle:
            return Metrics(get(self.stats, "/metrics"))

        def quiet():
            m = Metrics(get(self.stats, "/metrics"))
            return m if all(v == 0 for (n, _), v in m.samples.items()
                            if n == "lbd_frontend_current_sessions") \
                else None
        return wait_for(quiet, 5, what="the client connections to end")

    # the log lines of this lbd

    def log_lines(self, kind=None):
        """This lbd's request log lines since the test's mark, parsed
        (httplog, or tcplog for <kind> "tcp")."""
        out = []
        pids = self.seen_pids() | {self.lb.pid}
        for ln in self.syslog.lines():
            m = re.search(r" lbd\[(\d+)\]: (.*)$", ln)
            if m is None or int(m.group(1)) not in pids:
                continue
            p = parse_tcplog(m.group(2)) if kind == "tcp" else \
                parse_httplog(m.group(2))
            if p is not None:
                p["syslog"] = ln
                out.append(p)
        return out

    def seen_pids(self):
        """The pids of this lbd's processes, those gone included (as far
        as they were seen: call it before a reload)."""
        s = getattr(self, "_seen", set())
        s |= set(children(self.lb.pid))
        self._seen = s
        return s

    def wait_logs(self, n, kind=None, pred=None, timeout=5.0):
        def ok():
            ls = [x for x in self.log_lines(kind) if pred is None or
                  pred(x)]
            return ls if len(ls) >= n else None
        try:
            return wait_for(ok, timeout, what=f"{n} log lines")
        except AssertionError:
            raise AssertionError(f"not {n} log lines in:\n" +
                                 "\n".join(self.syslog.lines()[-30:]))


# httplog: client:port [date] frontend backend/server Tq/Tw/Tc/Tr/Ta
# status bytes - - term actconn/feconn/beconn/srvconn/retries 0/0 "req"
HTTPLOG = re.compile(
    r'^(?P<client>\[?[0-9a-f.:]+?\]?):(?P<port>\d+) '
    r'\[(?P<date>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] '
    r'(?P<frontend>[\w.-]+)(?P<tls>~?) '
    r'(?P<backend>[\w.<>-]+)/(?P<server>[\w.<>-]+) '
    r'(?P<tq>-?\d+)/(?P<tw>-?\d+)/(?P<tc>-?\d+)/(?P<tr>-?\d+)/'
    r'(?P<ta>\d+) '
    r'(?P<status>\d{3}|-1) (?P<bytes>\d+) - - (?P<term>[-A-Za-z]{4}) '
    r'(?P<actconn>\d+)/(?P<feconn>\d+)/(?P<beconn>\d+)/(?P<srvconn>\d+)/'
    r'(?P<retries>\d+) (?P<srvq>\d+)/(?P<beq>\d+) '
    r'"(?P<request>[^"]*)"$')

# tcplog: client:port [date] frontend backend/server Tw/Tc/Tt bytes term
TCPLOG = re.compile(
    r'^(?P<client>[0-9a-f.:]+?):(?P<port>\d+) '
    r'\[(?P<date>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] '
    r'(?P<frontend>[\w.-]+) (?P<backend>[\w.<>-]+)/(?P<server>[\w.<>-]+) '
    r'(?P<tw>-?\d+)/(?P<tc>-?\d+)/(?P<tt>\d+) (?P<bytes>\d+) '
    r'(?P<term>[-A-Za-z]{4})$')

INTS = ("port", "tq", "tw", "tc", "tr", "ta", "tt", "status", "bytes",
        "actconn", "feconn", "beconn", "srvconn", "retries", "srvq", "beq")


def _typed(m):
    d = m.groupdict()
    for k in INTS:
        if d.get(k) is not None:
            d[k] = int(d[k])
    return d


def parse_httplog(line):
    m = HTTPLOG.match(line)
    return _typed(m) if m else None


def parse_tcplog(line):
    m = TCPLOG.match(line)
    return _typed(m) if m else None


class Metrics:
    """/metrics, checked as an exposition as it is read: one HELP and one
    TYPE per family before its samples, samples of one family together,
    label values escaped, histograms cumulative with a +Inf bucket equal
    to _count."""

    SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? '
                        r'(-?[0-9.e+]+|\+Inf|NaN)$')
    LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"'
                       r'(,|$)')

    def __init__(self, r):
        assert r.status == 200, r
        assert r.header("Content-Type").startswith("text/plain; "
                                                   "version=0.0.4"), r.head
        text = r.body.decode()
        assert text.endswith("\n"), text[-80:]
        self.types, self.helps, self.samples = {}, {}, {}
        family, done = None, set()
        for ln in text.splitlines():
            if ln.startswith("# HELP "):
                name, help_ = ln[7:].split(" ", 1)
                assert name not in self.helps, f"two HELP for {name}"
                assert name not in done, f"{name} split up"
                if family is not None:
                    done.add(family)
                family = name
                self.helps[name] = help_
                continue
            if ln.startswith("# TYPE "):
                name, t = ln[7:].split(" ", 1)
                assert name == family, f"TYPE {name} after HELP {family}"
                assert t in ("counter", "gauge", "histogram"), ln
                self.types[name] = t
                continue
            m = self.SAMPLE.match(ln)
            assert m, f"bad sample line {ln!r}"
            name, labels, val = m.group(1), m.group(2) or "", m.group(3)
            base = re.sub(r"_(bucket|sum|count)$", "", name) \
                if self.types.get(family) == "histogram" else name
            assert base == family, f"{name} under family {family}"
            lab, pos = {}, 0
            while pos < len(labels):
                lm = self.LABEL.match(labels, pos)
                assert lm, f"bad labels in {ln!r}"
                lab[lm.group(1)] = re.sub(r"\\(.)", lambda x: {
                    "n": "\n"}.get(x.group(1), x.group(1)), lm.group(2))
                pos = lm.end()
            key = (name, tuple(sorted(lab.items())))
            assert key not in self.samples, f"duplicate {ln!r}"
            self.samples[key] = float(val)
        for name, t in self.types.items():
            if t == "histogram":
                self._check_histogram(name)

    def _check_histogram(self, name):
        series = {}
        for (n, lab), v in self.samples.items():
            if n == name + "_bucket":
                d = dict(lab)
                le = d.pop("le")
                series.setdefault(tuple(sorted(d.items())), []).append(
                    (float(le), v))
        assert series, f"histogram {name} without buckets"
        for lab, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == float("inf"), f"{name}: no +Inf"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), \
                f"{name}{lab}: buckets not cumulative {counts}"
            assert self.samples[(name + "_count", lab)] == counts[-1], \
                f"{name}{lab}: _count is not the +Inf bucket"
            assert (name + "_sum", lab) in self.samples, name

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def __call__(self, name, **labels):
        v = self.get(name, **labels)
        assert v is not None, f"no sample {name}{labels}"
        return v

    def buckets(self, name, **labels):
        """[(le, cumulative count)] of a histogram's series."""
        out = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            le = d.pop("le", None)
            if n == name + "_bucket" and d == labels:
                out.append((float(le), v))
        return sorted(out)


class StatsPage(html.parser.HTMLParser):
    """The tables of the stats page: [(heading before it, [[cells]])]."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.heading, self.refresh = [], None, None
        self._in, self._cell, self._row, self._h = None, None, None, False
        self.classes = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = int(a["content"])
        elif tag == "h2":
            self._h, self.heading = True, ""
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr":
            self._row = []
            self.tables[-1][1].append(self._row)
        elif tag in ("td", "th"):
            self._cell = ""
            if a.get("class"):
                self.classes.append(a["class"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "h2":
            self._h = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._h:
            self.heading += data


class Loop:
    """Clients sending requests through lbd until stopped, each on a
    keep-alive connection of a few requests: the failures and which
    server answered.  A reused connection that the server closed before
    answering is retried on a new one, as real clients do."""

    def __init__(self, port, threads=3, per_conn=5, path="/hello"):
        self.port, self.per_conn, self.path = port, per_conn, path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures, self.seen = [], []
        self.ts = [threading.Thread(target=self.run, daemon=True)
                   for _ in range(threads)]

    def run(self):
        while not self.stop.is_set():
            try:
                c = Conn(self.port)
            except OSError as e:
                with self.lock:
                    self.failures.append(f"connect: {e!r}")
                continue
            with c:
                for i in range(self.per_conn):
                    try:
                        c.send(request_bytes("GET", self.path))
                        r = c.read_response()
                    except (OSError, Closed) as e:
                        if i == 0 or c.buf:
                            with self.lock:
                                self.failures.append(repr(e))
                        break
                    with self.lock:
                        if r.status != 200:
                            self.failures.append(f"status {r.status}")
                        else:
                            self.seen.append(r.header("Server"))
                    if r.header("Connection", "").lower() == "close":
                        break

    @property
    def n(self):
        with self.lock:
            return len(self.seen)

    def __enter__(self):
        for t in self.ts:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.ts:
            t.join(10 * SLOW)


def raw_closed(port, data=b"", source=None, timeout=3.0):
    """Connect (from <source>), send <data>, and return what came back
    before the server closed (None if it did not close in <timeout>)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW,
                                 source_address=(source, 0) if source
                                 else None)
    s.settimeout(timeout * SLOW)
    out = b""
    try:
        if data:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return out
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                return out
            if not d:
                return out
            out += d
    finally:
        s.close()


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def head_fields(r):
    """The request head a testhttpd server got (its /head answer): the
    request line and {lower-case name: [values]}."""
    lines = r.body.decode("latin-1").split("\r\n")
    out = {}
    for ln in lines[1:]:
        if ln:
            n, v = ln.split(":", 1)
            out.setdefault(n.lower(), []).append(v.strip())
    return lines[0], out


class ListenServer:
    """A TCP server on a free loopback port (self.addr) that hands each
    connection to self.serve(), in a thread of its own if <threaded>,
    else one after the other (their order kept)."""
    threaded = True

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            if self.threaded:
                threading.Thread(target=self.serve, args=(s,),
                                 daemon=True).start()
            else:
                self.serve(s)

    def close(self):
        self.ls.close()


class EchoServer(ListenServer):
    """Echoes each connection's bytes back ("echo"), or counts them and
    answers the count at their end ("count"); at the end of the client's
    bytes it shuts down its side."""

    def __init__(self, mode="echo"):
        self.mode = mode
        super().__init__()

    def serve(self, s):
        total = 0
        with s:
            s.settimeout(30)
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    total += len(d)
                    if self.mode == "echo":
                        s.sendall(d)
                if self.mode == "count":
                    s.sendall(b"%d\n" % total)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class RawServer(ListenServer):
    """A server that records the first bytes of each connection and
    answers one HTTP response, so that what lbd sends before the request
    (a PROXY header) can be read as it is."""
    threaded = False

    def __init__(self):
        self.got = []
        super().__init__()

    def serve(self, s):
        with s:
            s.settimeout(5)
            buf = b""
            try:
                while not self.whole(buf):
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                self.got.append(buf)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                          b"Connection: close\r\n\r\nok\n")
            except OSError:
                pass

    @staticmethod
    def whole(buf):
        """A request head after any PROXY header: the v2 signature holds
        a CRLFCRLF of its own, and may come in a segment alone."""
        start = 0
        if buf[:12] == PP2_SIG[:len(buf[:12])] and buf:
            if len(buf) < 16:
                return False
            start = 16 + struct.unpack("!H", buf[14:16])[0]
        return b"\r\n\r\n" in buf[start:]

    def close(self):
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.t.join(5)
        self.ls.close()


def pp2(src, sport, dst="127.0.0.1", dport=80):
    """A PROXY v2 header for TCP over IPv4."""
    return PP2_SIG + b"\x21\x11" + struct.pack(
        "!H4s4sHH", 12, socket.inet_aton(src), socket.inet_aton(dst),
        sport, dport)
