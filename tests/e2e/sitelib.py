"""The demo site for the end-to-end tests (tests/e2e/test_site_*.py).

Each test module starts its own copy of the demo site with
tests/e2e/demo.sh (the same script as make demo), with its state in the
module's folder under $RESULTS/tmp and every port shifted by an offset
(PORTS) at which all of the site's ports are free.  Inside the test run's
mount namespace a syslog daemon already serves /dev/log, so the daemons'
lines land in $RESULTS/syslog.log (harness.Syslog); several modules share
that file, so the tests match lines by the pids of their own daemons.

lbd limits each client address to 200 requests a second (lbd/demo.conf),
so the clients here are paced, and loops that run at the same time use
loopback addresses of their own (127.0.0.N)."""
import fcntl
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import zlib

from harness import workdir, BUILD, SLOW, TOP, Syslog, alive, children, \
    cmdline, wait_for

DEMO = os.path.join(TOP, "tests", "e2e", "demo.sh")
RCDIR = os.path.join(TOP, "rc.d")
LOCK = "/tmp/lbd-suite-e2e-ports.lock"


def demo_ports():
    """The demo's base ports by name (http, web1, db2m...), read from
    demo.sh so that the two never disagree."""
    with open(DEMO) as f:
        text = f.read()
    ports = {n: int(p) for n, p in
             re.findall(r"p_(\w+)=\$\(\((\d+) \+ o\)\)", text)}
    assert len(ports) >= 15, ports
    return ports


def offsets():
    """Offsets below the ephemeral range (32768) whose port sets do not
    overlap: two sites at different offsets never share a port."""
    base = sorted(demo_ports().values())
    used, out = set(), []
    for o in range(10000, 32767 - base[-1]):
        s = {b + o for b in base}
        if not s & used:
            used |= s
            out.append(o)
    return out


def port_free(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def tree(pid):
    """pid and its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if alive(p):
            out.append(p)
        todo.extend(children(p))
    return out


class Resp:
    def __init__(self, status, headers, body, t0, t1):
        self.status = status
        self.headers = headers          # [(name, value)]
        self.body = body
        self.t0, self.t1 = t0, t1

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    @property
    def served_by(self):
        return self.header("X-Served-By")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<{self.status} by {self.served_by} "
                f"{self.body[:120]!r}>")


class Client:
    """HTTP/1.1 to the site, a new connection per request, from its own
    loopback source address, at most `rate` requests a second, keeping
    the cookies the site sets (the appd_lsn session cookie)."""

    def __init__(self, site, source="127.0.0.1", rate=100, tls=False):
        self.site = site
        self.source = source
        self.gap = 1.0 / rate
        self.tls = tls
        self.cookies = {}
        self.last = 0.0

    def request(self, method, path, body=None, port=None, tls=None,
                headers=None, timeout=10, cookies=True):
        tls = self.tls if tls is None else tls
        if port is None:
            port = self.site.ports["https" if tls else "http"]
        wait = self.last + self.gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last = time.monotonic()
        h = {"Connection": "close"}
        if cookies and self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}"
                                    for k, v in self.cookies.items())
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if tls:
            c = http.client.HTTPSConnection(
                "127.0.0.1", port, timeout=timeout * SLOW,
                source_address=(self.source, 0), context=self.site.tls())
        else:
            c = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=timeout * SLOW,
                source_address=(self.source, 0))
        t0 = time.time()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = r.getheaders()
        finally:
            c.close()
        resp = Resp(r.status, hdrs, data, t0, time.time())
        if cookies:
            for v in resp.headers:
                if v[0].lower() == "set-cookie":
                    k, _, val = v[1].split(";", 1)[0].partition("=")
                    self.cookies[k.strip()] = val.strip()
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_note(self, text, author="e2e", **kw):
        return self.request("POST", "/api/notes",
                            {"text": text, "author": author}, **kw)


class Loop(threading.Thread):
    """A client asking the site in a loop until stop(): each turn calls
    fn(client, i), which returns None when the answer was right or a
    string saying what was wrong (exceptions count as failures too).
    Keeps (start, end, error or None, served_by)."""

    def __init__(self, site, source, fn, rate=60):
        super().__init__(daemon=True)
        self.client = Client(site, source=source, rate=rate)
        self.fn = fn
        self.halt = threading.Event()
        self.log = []

    def run(self):
        i = 0
        while not self.halt.is_set():
            t0 = time.time()
            by = None
            try:
                err, by = self.fn(self.client, i)
            except (OSError, http.client.HTTPException, ValueError) as e:
                err = f"{type(e).__name__}: {e}"
            self.log.append((t0, time.time(), err, by))
            i += 1

    def stop(self):
        self.halt.set()
        self.join(30)

    def failures(self, after=0.0):
        return [x for x in self.log if x[2] is not None and x[0] >= after]


class Site:
    """One copy of the demo site, at ports shifted by `offset`."""

    def __init__(self, state, offset):
        self.state = state
        self.offset = offset
        self.ports = {k: v + offset for k, v in demo_ports().items()}
        self.confdir = os.path.join(state, "conf")
        self.rundir = os.path.join(state, "run")
        self.ca = os.path.join(state, "tls", "site.crt")
        self.env = dict(os.environ, STATE=state, PORTS=str(offset),
                        BUILD=BUILD, BINDIR=os.path.join(TOP, BUILD, "bin"),
                        CONFDIR=self.confdir, RUNDIR=self.rundir)
        self._tls = None

    def tls(self):
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.ca)
        return self._tls

    def demo(self, cmd, timeout=120):
        p = subprocess.run(["sh", DEMO, cmd], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def start(self):
        rc, out = self.demo("start")
        if rc != 0:
            raise AssertionError(f"demo.sh start failed ({rc}):\n{out}")
        return out

    def stop(self):
        return self.demo("stop")

    def heal(self):
        """Start whatever instance a failed test left stopped (rc.d/site
        start leaves the running ones alone), and wait until lbd sees
        both web servers UP."""
        p = subprocess.run([os.path.join(RCDIR, "site"), "start",
                            os.path.join(self.confdir, "site")],
                           env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60 * SLOW)
        if p.returncode != 0:
            raise AssertionError("rc.d/site start: " +
                                 p.stdout.decode(errors="replace"))
        for s in ("web1", "web2"):
            self.wait_server(s, True)

    def rc(self, daemon, cmd, inst, timeout=60, **env):
        p = subprocess.run([os.path.join(RCDIR, daemon), cmd, inst],
                           env=dict(self.env, **env),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout * SLOW)
        return (p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"))

    def pidfile(self, daemon, inst):
        return os.path.join(self.rundir, f"{daemon}-{inst}.pid")

    def pid(self, daemon, inst):
        """The master's pid from its pidfile, when it runs."""
        try:
            with open(self.pidfile(daemon, inst)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def procs(self, daemon, inst):
        pid = self.pid(daemon, inst)
        return tree(pid) if pid else []

    def kill9(self, daemon, inst):
        """kill -9 the master and all its processes, as a crash would;
        returns the pids killed, once they are gone."""
        master = self.pid(daemon, inst)
        assert master, f"{daemon} {inst} does not run"
        # stopped, the master forks no worker after the list is taken (a
        # dynamic pool's, or a respawn): none is left answering
        os.kill(master, signal.SIGSTOP)
        pids = self.procs(daemon, inst)
        for p in pids:                  # the master first: no respawn
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not any(alive(p) for p in pids), 5,
                 what=f"{daemon} {inst} to die")
        return pids

    def workers(self, daemon, inst):
        pid = self.pid(daemon, inst)
        return [p for p in children(pid) if "worker" in cmdline(p)] \
            if pid else []

    # lbd's /metrics
    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.ports["stats"],
                                       timeout=5 * SLOW)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            text = r.read().decode()
        finally:
            c.close()
        out = {}
        for ln in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", ln)
            if not m:
                continue
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"',
                                             m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    def metric(self, name, **labels):
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def server_up(self, server):
        return self.metric("lbd_server_up", backend="webs", server=server)

    def wait_server(self, server, up, timeout=15):
        """Poll lbd's metrics until the server is UP (1) or DOWN (0);
        returns when that was seen."""
        want = 1 if up else 0
        wait_for(lambda: self.server_up(server) == want, timeout,
                 step=0.05,
                 what=f"{server} {'UP' if up else 'DOWN'} in lbd's metrics")
        return time.time()

    def syslog_rx(self, daemon, inst, text):
        """A regex for a line `text` logged by any process of the
        instance (the master or its children)."""
        pids = "|".join(str(p) for p in self.procs(daemon, inst))
        return rf"{daemon}\[(?:{pids})\]: (?:.*: )?{text}"


class SiteTest(unittest.TestCase):
    """A module's site: started once for the test class, stopped after."""

    site = None

    @classmethod
    def setUpClass(cls):
        cls.dir = workdir(cls.__module__)
        cls.state = os.path.join(cls.dir, "state")
        cands = offsets()
        first = zlib.crc32(cls.__module__.encode()) % len(cands)
        lockf = open(LOCK, "a")
        try:
            # one site starts at a time on this machine (other runs
            # included): the ports seen free stay free until it listens
            fcntl.flock(lockf, fcntl.LOCK_EX)
            for k in range(len(cands)):
                o = cands[(first + k) % len(cands)]
                ports = [b + o for b in demo_ports().values()]
                if all(port_free(p) for p in ports):
                    break
            else:
                raise AssertionError("no offset with all demo ports free")
            cls.site = Site(cls.state, o)
            t0 = time.time()
            try:
                cls.site.start()
            except BaseException:
                cls.site.stop()
                raise
            cls.start_time = time.time() - t0
        finally:
            fcntl.flock(lockf, fcntl.LOCK_UN)
            lockf.close()
        print(f"site at PORTS={o} (http {cls.site.ports['http']}), state "
              f"{cls.state}, started in {cls.start_time:.1f}s", flush=True)

    @classmethod
    def tearDownClass(cls):
        if cls.site is not None:
            rc, out = cls.site.stop()
            if rc != 0:
                print(f"demo.sh stop: exit {rc}\n{out}")

    def setUp(self):
        self.syslog = Syslog()
        self.client = Client(self.site)
