"""Helpers for webd's integration tests (tests/integration/test_webd_*.py):
a conf around the test's servers, a webd started once for a whole test
class (the static-file tests ask hundreds of questions of one site), raw
requests over sockets, and the parsers the tests check answers with
(multipart/byteranges, the Prometheus exposition, access-log lines)."""
import os
import re
import signal
import socket
import ssl
import unittest

from harness import (workdir, SLOW, Daemon, Syslog, alive, free_port,
                     wait_port)
from httpc import Conn, Response

HEAD = """
workers {workers}
pidfile "@PIDFILE@"
{extra}
"""


def webd_conf(body, workers=1, extra=""):
    """A whole webd.conf: the process settings, then <body>."""
    return HEAD.format(workers=workers, extra=extra) + body


def write(path, data, mode=None, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def raw(port, data, timeout=5.0, host="127.0.0.1", tls=False):
    """Send <data> as is on a new connection and return every byte the
    server sends until it closes (or stays silent <timeout> s).  A <port>
    that is a string is a unix socket's path."""
    if isinstance(port, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout * SLOW)
        s.connect(port)
    else:
        s = socket.create_connection((host, port), timeout=timeout * SLOW)
    if tls:
        s = client_tls().wrap_socket(s, server_hostname="localhost")
    out = b""
    try:
        s.sendall(data if isinstance(data, bytes) else data.encode())
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not c:
                break
            out += c
    finally:
        s.close()
    return out


def raw_request(port, target, method="GET", headers=(), host="test",
                version="HTTP/1.1", timeout=5.0):
    """One request whose target goes on the wire byte for byte; returns
    (Response or None, all bytes received)."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    req = method.encode() + b" " + target + b" " + version.encode() + \
        b"\r\n"
    if host is not None:
        req += b"Host: " + host.encode() + b"\r\n"
    for n, v in headers:
        req += f"{n}: {v}\r\n".encode("latin-1")
    req += b"Connection: close\r\n\r\n"
    data = raw(port, req, timeout)
    return parse_response(data, method), data


def parse_response(data, method="GET"):
    """The first response in <data> (Content-Length or close-delimited),
    or None when <data> holds no status line."""
    if b"\r\n\r\n" not in data:
        return None
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
    if m is None:
        return None
    hdrs = []
    for ln in lines[1:]:
        n, v = ln.split(":", 1)
        hdrs.append((n, v.strip()))
    r = Response(m.group(1), int(m.group(2)), m.group(3), hdrs,
                 head + b"\r\n\r\n")
    cl = r.header("Content-Length")
    if method == "HEAD" or r.status in (204, 304):
        r.body = b""
    elif cl is not None:
        r.body = rest[:int(cl)]
    else:
        r.body = rest
    return r


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_get(port, path, host="localhost", headers=()):
    """One request over TLS (the certificate is not checked)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    s = client_tls().wrap_socket(s, server_hostname=host)
    with Conn(port, sock=s) as c:
        return c.request("GET", path, list(headers) +
                         [("Connection", "close")], host=host)


def multipart(r):
    """The parts of a multipart/byteranges response: a list of
    (headers dict with lowercase names, data)."""
    ct = r.header("Content-Type")
    m = re.match(r'multipart/byteranges; boundary=("?)([^";]+)\1$', ct)
    if m is None:
        raise AssertionError(f"not multipart/byteranges: {ct!r}")
    delim = b"--" + m.group(2).encode()
    body = r.body
    # the body is: (--B CRLF headers CRLF CRLF data CRLF)* --B-- CRLF
    if not body.startswith(delim + b"\r\n"):
        raise AssertionError(f"body does not start with the boundary: "
                             f"{body[:80]!r}")
    if not body.endswith(b"\r\n" + delim + b"--\r\n"):
        raise AssertionError(f"no closing boundary: {body[-80:]!r}")
    parts = []
    pos = len(delim) + 2
    end = len(body) - len(delim) - 4
    while pos < end:
        he = body.index(b"\r\n\r\n", pos)
        hdrs = {}
        for ln in body[pos:he].decode("latin-1").split("\r\n"):
            n, v = ln.split(":", 1)
            hdrs[n.strip().lower()] = v.strip()
        rng = re.match(r"bytes (\d+)-(\d+)/(\d+)$", hdrs["content-range"])
        first, last = int(rng.group(1)), int(rng.group(2))
        dstart = he + 4
        dend = dstart + last - first + 1
        data = body[dstart:dend]
        nxt = body[dend:dend + 2 + len(delim)]
        if nxt != b"\r\n" + delim:
            raise AssertionError(f"part {len(parts)} not followed by the "
                                 f"boundary: {nxt!r}")
        parts.append((hdrs, data))
        pos = dend + 2 + len(delim)
        if body[pos:pos + 2] == b"--":
            break
        if body[pos:pos + 2] != b"\r\n":
            raise AssertionError(f"bad delimiter line at {pos}")
        pos += 2
    return parts


def metrics(port, path="/metrics"):
    """The Prometheus exposition at <port> as {(name, labels): value},
    labels a frozenset of (key, value); and the raw text."""
    with Conn(port) as c:
        r = c.request("GET", path, [("Connection", "close")])
    if r.status != 200:
        raise AssertionError(f"metrics: {r.status} {r.body[:200]!r}")
    out = {}
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    for ln in r.body.decode().splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = rx.match(ln)
        if m is None:
            raise AssertionError(f"bad exposition line {ln!r}")
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out, r.body.decode()


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


# Combined Log Format, as webd writes it (server_log.c), after the
# syslog tag and the site name.
CLF = re.compile(r'(?P<site>\S+) (?P<client>\S+) - (?P<user>\S+) '
                 r'\[(?P<time>[^\]]+)\] '
                 r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
                 r'(?P<bytes>\d+)(?: "(?P<referer>(?:[^"\\]|\\.)*)" '
                 r'"(?P<ua>(?:[^"\\]|\\.)*)")?(?: "(?P<xff>(?:[^"\\]|\\.)*)")?'
                 r'(?: rt=(?P<rt>\d+\.\d{3}) urt=(?P<urt>-|\d+\.\d{3}))?$')


def clf(line):
    """The fields of an access-log line (the part after "webd[pid]: ")."""
    m = CLF.search(line.split("]: ", 1)[1] if "]: " in line else line)
    if m is None:
        raise AssertionError(f"not an access-log line: {line!r}")
    return m.groupdict()


def worker_deaths(syslog, pids):
    return [ln for ln in syslog.lines()
            if any(f"[{m}]: " in ln for m in pids) and
            re.search(r"\(pid \d+\) (killed by signal|exited with)"
                      r".*, respawning", ln)]


class WebdClass(unittest.TestCase):
    """One webd for every test of the class: setUpClass builds the tree
    (make_tree) and the conf (conf), starts it, and tearDownClass stops it
    and fails the class when a worker died meanwhile (a crash or a
    sanitizer abort the clients would not otherwise notice)."""

    WORKERS = 1

    @classmethod
    def make_tree(cls):
        pass

    @classmethod
    def conf(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.dir = workdir(cls.__name__)
        cls.syslog = Syslog()
        cls.port = free_port()
        cls.make_tree()
        cls.d = Daemon("webd", webd_conf(cls.conf(), cls.WORKERS),
                       cls.dir)
        cls.addClassCleanup(cls.d.kill_all)
        rc, out = cls.d.run("-n")
        if rc != 0:
            raise AssertionError(f"webd -n: {out}")
        cls.d.start()
        cls.d.wait_workers(cls.WORKERS)
        wait_port("127.0.0.1", cls.port)

    @classmethod
    def tearDownClass(cls):
        dead = worker_deaths(cls.syslog, [cls.d.pid])
        if cls.d.pid and alive(cls.d.pid):
            cls.d.stop(signal.SIGTERM, timeout=10)
        if dead:
            raise AssertionError("worker died during the tests:\n" +
                                 "\n".join(dead))

    def get(self, path, headers=(), method="GET", host="main.test",
            port=None):
        with Conn(port or self.port) as c:
            return c.request(method, path,
                             list(headers) + [("Connection", "close")],
                             host=host)

    def raw(self, target, **kw):
        kw.setdefault("host", "main.test")
        return raw_request(self.port, target, **kw)


__all__ = ["webd_conf", "write", "raw", "raw_request", "parse_response",
           "tls_get", "multipart", "metrics", "metric", "clf",
           "worker_deaths", "WebdClass"]
