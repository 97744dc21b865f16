"""HTTP/1.1 over plain sockets for the integration tests of the HTTP
engine, the proxy and TLS: exact bytes out, responses read back one by
one (so that pipelined answers can be checked in order), plus helpers to
look at the daemons' processes (RSS, which worker owns a connection) and
to make test certificates."""
import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time

from harness import SANITIZE, SLOW, DaemonTest, alive, wait_for

# Under ASan, freed memory waits in a quarantine (256 MB by default)
# before reuse, which shows as RSS: keep it small enough for the memory
# bounds checked here to mean something (use-after-free of recent frees
# is still caught).
if SANITIZE and "quarantine_size_mb" not in os.environ.get("ASAN_OPTIONS",
                                                            ""):
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + \
        ":quarantine_size_mb=4"


class Response:
    def __init__(self, version, status, reason, headers, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)], as received
        self.head = head                # the raw head, CRLFs included
        self.body = b""
        self.raw_body = b""             # as on the wire (chunked: coded)

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:80]!r}>"


class Closed(Exception):
    """The peer closed before a complete response."""


class Conn:
    """A client connection; bytes read beyond a response are kept for the
    next one."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, source=None,
                 sock=None):
        if sock is not None:
            self.s = sock
        else:
            self.s = socket.create_connection(
                (host, port), timeout=timeout * SLOW,
                source_address=(source, 0) if source else None)
        self.s.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @property
    def local_port(self):
        return self.s.getsockname()[1]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _fill(self, n=65536):
        if self.eof:
            raise Closed("connection closed")
        d = self.s.recv(n)
        if not d:
            self.eof = True
            raise Closed("connection closed")
        self.buf += d

    def read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        if len(self.buf) < n:
            # gather the pieces, then join once (not quadratic)
            parts, have = [self.buf], len(self.buf)
            try:
                while have < n:
                    if self.eof:
                        raise Closed("connection closed")
                    d = self.s.recv(max(65536, min(n - have, 1 << 20)))
                    if not d:
                        self.eof = True
                        raise Closed("connection closed")
                    parts.append(d)
                    have += len(d)
            finally:
                self.buf = b"".join(parts)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if m is None:
            raise AssertionError(f"bad status line {lines[0]!r}")
        hdrs = []
        for ln in lines[1:]:
            n, v = ln.split(":", 1)
            hdrs.append((n, v.strip()))
        return Response(m.group(1), int(m.group(2)), m.group(3), hdrs, head)

    def read_response(self, method="GET", interim=False):
        """One response (1xx are skipped unless <interim>)."""
        while True:
            r = self.read_head()
            if r.status >= 200 or interim or r.status == 101:
                break
        if method == "HEAD" or r.status in (101, 204, 304) or \
                r.status < 200:
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te is not None:
            assert te.lower() == "chunked", te
            body, raw = [], []
            while True:
                line = self.read_until(b"\r\n")
                raw.append(line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n")
                        raw.append(t)
                        if t == b"\r\n":
                            break
                    break
                data = self.read_exact(size + 2)
                assert data[-2:] == b"\r\n", data[-2:]
                raw.append(data)
                body.append(data[:-2])
            r.body = b"".join(body)
            r.raw_body = b"".join(raw)
        elif cl is not None:
            r.body = r.raw_body = self.read_exact(int(cl))
        else:
            r.body = r.raw_body = self.read_all()
        return r

    def read_all(self):
        """Everything until the peer closes."""
        try:
            while True:
                self._fill()
        except Closed:
            pass
        out, self.buf = self.buf, b""
        return out

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within <timeout> s, with
        no bytes pending; the bytes that came meanwhile are kept."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.s.settimeout(5.0 * SLOW)

    def request(self, method, path, headers=(), body=None, host="test",
                version="HTTP/1.1"):
        req = request_bytes(method, path, headers, body, host, version)
        self.send(req)
        return self.read_response(method)


def request_bytes(method, path, headers=(), body=None, host="test",
                  version="HTTP/1.1"):
    h = f"{method} {path} {version}\r\n"
    if host is not None:
        h += f"Host: {host}\r\n"
    names = [n.lower() for n, _ in headers]
    for n, v in headers:
        h += f"{n}: {v}\r\n"
    if body is not None and "content-length" not in names and \
            "transfer-encoding" not in names:
        h += f"Content-Length: {len(body)}\r\n"
    h += "\r\n"
    out = h.encode("latin-1")
    if body is not None:
        out += body if isinstance(body, bytes) else body.encode()
    return out


def get(port, path, headers=(), method="GET", body=None, host="test",
        source=None, timeout=5.0):
    """One request on a fresh connection (Connection: close)."""
    with Conn(port, source=source, timeout=timeout) as c:
        return c.request(method, path,
                         list(headers) + [("Connection", "close")], body,
                         host)


def chunked(data, size=8192):
    out = []
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out.append(b"%x\r\n%s\r\n" % (len(part), part))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


PATTERN = bytes(ord("a") + i % 26 for i in range(16384))


def source_bytes(n):
    """What testhttpd's /source/N sends."""
    whole, rest = divmod(n, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class RssWatch:
    """Samples a process's RSS in a thread; .peak and .base in KiB."""

    def __init__(self, pid, step=0.02):
        import threading
        self.pid = pid
        self.base = rss_kb(pid)
        self.peak = self.base
        self.step = step
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(self.step)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()
        self.peak = max(self.peak, rss_kb(self.pid))

    @property
    def growth_mb(self):
        return (self.peak - self.base) / 1024.0


def socket_owner(local_port, server_port):
    """The pid holding the server side of the TCP connection from
    <local_port> (the client's port) to <server_port>."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established",
         f"( sport = :{server_port} and dport = :{local_port} )"],
        stdout=subprocess.PIPE, text=True, timeout=5).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def tcp_conns(port):
    """Sockets (any state) with <port> on either end, as (state, local,
    peer) tuples, from ss."""
    out = subprocess.run(
        ["ss", "-tanH", f"( sport = :{port} or dport = :{port} )"],
        stdout=subprocess.PIPE, text=True, timeout=5).stdout
    res = []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) >= 5 and f[0] != "LISTEN":
            res.append((f[0], f[3], f[4]))
    return res


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@contextlib.contextmanager
def only_worker(workers, pid):
    """Stop every worker but <pid> (SIGSTOP) so that connections made in
    the block are accepted by <pid>: with EPOLLEXCLUSIVE the kernel wakes
    only workers waiting in epoll_wait, and a stopped one is not."""
    others = [w for w in workers if w != pid]
    try:
        for w in others:
            os.kill(w, signal.SIGSTOP)
        for w in others:
            wait_for(lambda: _state(w) in ("T", "t", None), 5,
                     what=f"worker {w} to stop")
        yield
    finally:
        for w in others:
            if alive(w):
                os.kill(w, signal.SIGCONT)


def make_cert(d, name, kind, sans, cn=None):
    """A self-signed certificate in <d>: <kind> "ec" (P-256) or "rsa";
    returns (certfile, keyfile)."""
    cert = os.path.join(d, name + ".crt")
    key = os.path.join(d, name + ".key")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] \
        if kind == "ec" else ["-newkey", "rsa:2048"]
    san = ",".join(s if s.startswith("IP:") else "DNS:" + s for s in sans)
    args = ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key,
            "-out", cert, "-days", "2", "-subj", f"/CN={cn or sans[0]}"]
    if san:
        args += ["-addext", f"subjectAltName={san}"]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    os.chmod(key, 0o600)
    return cert, key


class HttpTest(DaemonTest):
    """A DaemonTest that fails when a worker died on the way (a crash, a
    sanitizer abort): the master logs it and respawns, so the clients of
    a test would not otherwise notice.  A test that kills a worker on
    purpose puts its pid in self.killed."""

    def tearDown(self):
        masters = {d.pid for d in self.daemons if d.pid}
        killed = getattr(self, "killed", ())    # by the test itself
        dead = [ln for ln in self.syslog.lines()
                if any(f"[{m}]: " in ln for m in masters) and
                re.search(r"\(pid \d+\) (killed by signal|exited with)"
                          r".*, respawning", ln) and
                not any(f"(pid {k})" in ln for k in killed)]
        super().tearDown()
        if dead:
            self.fail("worker died during the test:\n" + "\n".join(dead))


def silent_server(test):
    """A server for one connection that reads a request head and answers
    nothing: returns (port, seen), seen["eof"] set to the seconds after
    the head when the connection was closed on it, False if it never was
    (10 s) -- what a proxy does with a request whose client left."""
    seen = {}

    def script(s, head):
        t0 = time.time()
        s.settimeout(10)
        try:
            seen["eof"] = s.recv(100) == b"" and time.time() - t0
        except OSError:
            seen["eof"] = False
    return scripted_server(test, script), seen


def scripted_server(test, script, rcvbuf=None):
    """A server on 127.0.0.1 for one connection, closed when <test> ends:
    once a request head is in, script(sock, bytes read) answers.  Returns
    its port."""
    ls = socket.socket()
    if rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    test.addCleanup(ls.close)

    def run():
        try:
            s, _ = ls.accept()
        except OSError:
            return
        with s:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    return
                buf += d
            script(s, buf)
    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1]

# test data for basic auth: "pw" hashed with bcrypt (cost 4)
BCRYPT_PW = "$2b$04$il4Xk3lYoHaiFPvBygkpjef1vb8S2zo/sLumhm7dZKQbgSWZRBIT2"


def basic_auth(user, pw):
    """The Authorization field of HTTP basic credentials."""
    return ("Authorization", "Basic " +
            base64.b64encode(f"{user}:{pw}".encode()).decode())
