"""Helpers for the integration tests: start the real daemons with a
generated conf, talk to them, read what they logged in the test run's
syslog (see tests/integration/run.sh)."""
import os
import random
import re
import signal as _signal
import socket
import subprocess
import tempfile
import time
import unittest

TOP = os.environ.get("TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(TOP, BUILD, "bin")
RESULTS = os.environ.get("RESULTS") or os.path.join(TOP, BUILD, "results")
SYSLOG = os.path.join(RESULTS, "syslog.log")
SANITIZE = os.environ.get("SANITIZE") == "1"
SLOW = 3 if SANITIZE else 1        # sanitized daemons are slower


def _port_range():
    """Ports outside the kernel's ephemeral range: a port taken from that
    range (bind to 0) may be given to some process's outgoing connection
    between the test's choice and the daemon's bind ("Address already
    in use").  None: no room outside it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low > 11000:
        return 10000, low - 1
    if high < 64000:
        return high + 1, 65535
    return None


def _reserve(port):
    """True if no test process of this run was given <port> before.  Test
    modules run side by side, and a port that is free now may be one
    another module gave to a server it has stopped and will start again
    (a backend brought back after its checks failed), or to a listener
    a reload adds: a mark in the run's results directory, made with
    O_EXCL, gives each port to one test only.  tests/run.sh empties the
    directory at each run."""
    d = os.path.join(RESULTS, "ports")
    os.makedirs(d, exist_ok=True)
    try:
        os.close(os.open(os.path.join(d, str(port)),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on now, outside the ephemeral range when
    there is room, and not one any test of this run was given before (a
    conf with two listeners would list one address twice; another module
    may start a server on it again later)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    rng = _port_range()
    for _ in range(1000):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, random.randint(*rng) if rng else 0))
            except OSError:
                continue
            port = s.getsockname()[1]
        if _reserve(port):
            return port
    raise AssertionError("no free port")


def wait_for(pred, timeout=5.0, step=0.02, what="condition"):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout * SLOW:.1f}s "
                         f"waiting for {what}")


def wait_value(get, ok, timeout=5.0, what="condition"):
    """get(), polled until ok() holds of what it returns, which is then
    returned: for a value another process sets a moment later (a gauge,
    a status field), read once more by each try."""
    def pred():
        v = get()
        return (v,) if ok(v) else None
    return wait_for(pred, timeout, what=what)[0]


_held = []


def dead_port():
    """A loopback port where nothing listens: kept bound, not listening,
    for the life of the run, so that no daemon of another test module
    running beside this one can be given it (a connect to it is refused
    all the same)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def log_time(line):
    """The time (epoch seconds) rsyslog gave a line of our syslog file:
    taken where the line was made, it leaves out the test's own delays."""
    import datetime
    return datetime.datetime.fromisoformat(line.split()[0]).timestamp()


def wait_port(host, port, timeout=5.0):
    def ok():
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_for(ok, timeout, what=f"{host}:{port} to accept")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_ms(pid):
    """User and system CPU time of process <pid>, in ms (10 ms steps)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def busy_poll_check(test, start):
    """The busy-poll test of each daemon.  start(extra) starts it with
    <extra> in its conf and returns (worker pid, helper pids, request,
    stop); request() makes one request on a kept connection and checks
    its answer.  With busy-poll 10ms, 40 requests 20 ms apart must cost
    the worker about 400 ms of CPU (it polls 10 ms after each; at least
    120 on a busy machine, where it is not always on a CPU), its helpers
    nothing, and the next 0.5 s without requests nothing: it sleeps
    again.  Without busy-poll the same requests cost next to nothing."""
    def run(extra):
        w, helpers, request, stop = start(extra)
        try:
            request()
            time.sleep(0.2)
            c0, h0 = cpu_ms(w), sum(cpu_ms(p) for p in helpers)
            for _ in range(40):
                request()
                time.sleep(0.02)
            c1, h1 = cpu_ms(w), sum(cpu_ms(p) for p in helpers)
            time.sleep(0.5)
            c2 = cpu_ms(w)
        finally:
            stop()
        return c1 - c0, h1 - h0, c2 - c1

    busy, helpers, idle = run("busy-poll 10ms")
    print(f"busy-poll 10ms, 40 requests: worker {busy} ms of CPU, helpers "
          f"{helpers} ms, then {idle} ms idle")
    test.assertGreaterEqual(busy, 120)      # 40 x 10 ms = 400 spun
    test.assertLess(helpers, 100)
    test.assertLess(idle, 40)
    off, _, _ = run("")
    print(f"without: worker {off} ms of CPU")
    test.assertLess(off, 60)


def children(pid):
    """Live child pids of pid, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(st[1]) == pid and st[0] != "Z":
            out.append(int(d))
    return sorted(out)


def kill_tree(pid, timeout=5.0):
    """SIGKILL <pid> and every process under it, and wait until all are
    gone.  It is stopped first: a master that forked
    between the listing and its kill would leave the new child behind,
    holding its listening sockets until it noticed (seen: a restart on
    the same port failed with EADDRINUSE)."""
    try:
        os.kill(pid, _signal.SIGSTOP)
    except OSError:
        return

    def stopped():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in "TtZX"
        except OSError:
            return True
    wait_for(stopped, timeout, step=0.002, what=f"{pid} to stop")
    pids, todo = [pid], [pid]
    while todo:
        kids = children(todo.pop())
        pids += kids
        todo += kids
    for p in pids:
        try:
            os.kill(p, _signal.SIGKILL)
        except OSError:
            pass
    wait_for(lambda: not any(alive(p) for p in pids), timeout,
             what=f"{pid} and its children to die")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace") \
                .strip()
    except OSError:
        return ""


def socket_in(pid, peer):
    """A duplicate of the socket process <pid> holds whose peer address is
    <peer> (host, port), taken with pidfd_getfd(2) (root, Linux 5.6+), or
    None: to read the options a daemon set on a connection it accepted."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith(
                        "socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)   # pidfd_getfd
            if fd < 0:
                continue
            s = socket.socket(fileno=fd)
            try:
                if s.getpeername()[:2] == peer:
                    return s
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    return None


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].split()
    return None


class Syslog:
    """Read lines logged since the mark was taken."""

    def __init__(self):
        self.path = SYSLOG
        self.mark()

    def mark(self):
        try:
            self.pos = os.path.getsize(self.path)
        except OSError:
            self.pos = 0

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def wait(self, pattern, timeout=5.0, tree=None):
        """The first line since the mark that matches <pattern>; with
        <tree> (a daemon's pid), only one its master or a child of it
        at the time wrote: the syslog is shared by the modules running
        side by side, and a child may be forked after the call."""
        rx = re.compile(pattern)
        pid_rx = re.compile(r"\[(\d+)\]: ")

        def find():
            for ln in self.lines():
                if not rx.search(ln):
                    continue
                if tree is not None:
                    m = pid_rx.search(ln)
                    if m is None or int(m.group(1)) not in \
                            [tree] + children(tree):
                        continue
                return ln
            return None
        try:
            return wait_for(find, timeout, what=f"syslog /{pattern}/")
        except AssertionError:
            raise AssertionError(f"no syslog line matching /{pattern}/; "
                                 "got:\n" + "\n".join(self.lines()[-30:]))


class Daemon:
    """One daemon instance with its own conf file, pidfile and folder."""

    def __init__(self, prog, conf, workdir, name=None, args=(), wrap=()):
        self.prog = os.path.join(BIN, prog)
        # a command the daemon is started through (tests/tools/sigign)
        self.wrap = list(wrap)
        self.dir = workdir
        self.name = name or prog
        self.conf_path = os.path.join(workdir, self.name + ".conf")
        self.pidfile = os.path.join(workdir, self.name + ".pid")
        self.args = list(args)
        self.proc = None
        self.pid = None
        self.write_conf(conf)

    def write_conf(self, conf):
        conf = conf.replace("@PIDFILE@", self.pidfile).replace(
            "@DIR@", self.dir)
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def run(self, *args, timeout=10):
        """Run the program to completion (for -n): (rc, stdout+stderr)."""
        p = subprocess.run([self.prog, "-f", self.conf_path, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def start(self, foreground=False, wait=True):
        args = [*self.wrap, self.prog, "-f", self.conf_path, *self.args]
        if foreground:
            args.append("-d")
            self.log = open(os.path.join(self.dir, self.name + ".stderr"),
                            "w")
            self.proc = subprocess.Popen(args, stdout=self.log,
                                         stderr=subprocess.STDOUT)
            self.pid = self.proc.pid
        else:
            p = subprocess.run(args, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20 * SLOW)
            if p.returncode != 0:
                raise AssertionError(f"{self.name} did not start "
                                     f"(exit {p.returncode}): "
                                     f"{p.stdout.decode(errors='replace')}")
            self.pid = wait_for(self.read_pidfile, 5,
                                what=f"{self.pidfile}")
        if wait:
            self.wait_workers()
        return self

    def read_pidfile(self):
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
            return pid if alive(pid) else None
        except (OSError, ValueError):
            return None

    def workers(self):
        return [p for p in children(self.pid) if "worker" in cmdline(p)]

    def wait_workers(self, n=None, timeout=5.0):
        def ok():
            w = self.workers()
            return w if (len(w) == n if n is not None else w) else None
        return wait_for(ok, timeout, what=f"{self.name} workers")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, sig=_signal.SIGTERM, timeout=10.0):
        """Signal the master and wait for it to go; returns its status
        when it is our child (foreground), else None."""
        if self.pid is None or not alive(self.pid):
            return self.proc.wait() if self.proc else None
        os.kill(self.pid, sig)
        if self.proc is not None:
            try:
                return self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError(f"{self.name} did not stop")
        wait_for(lambda: not alive(self.pid), timeout,
                 what=f"{self.name} to stop")
        return None

    def kill_all(self):
        if self.pid is None:
            return
        kill_tree(self.pid)
        if self.proc is not None:
            self.proc.wait()


def workdir(name):
    """A new private folder for a test's files under RESULTS/tmp.

    Unix socket paths are limited to 107 bytes and the tests put sockets
    in these folders, so the name is cut short, and when RESULTS itself
    sits deep (a CI checkout) the folder goes to the system's temporary
    folder instead."""
    base = os.path.join(RESULTS, "tmp")
    if len(base) > 48:
        base = os.path.join(tempfile.gettempdir(), "dbt-tests")
    os.makedirs(base, exist_ok=True)
    d = tempfile.mkdtemp(prefix=name[:20] + "-", dir=base)
    os.chmod(d, 0o755)
    return d


class DaemonTest(unittest.TestCase):
    """A test case with a work folder and daemons stopped afterwards."""

    def setUp(self):
        self.dir = workdir(self.id().split(".")[-1])
        self.daemons = []
        self.syslog = Syslog()

    def tearDown(self):
        for d in self.daemons:
            try:
                if d.pid and alive(d.pid):
                    d.stop(_signal.SIGINT, timeout=5)
            except Exception:
                pass
            d.kill_all()

    def daemon(self, prog, conf, **kw):
        d = Daemon(prog, conf, self.dir, **kw)
        self.daemons.append(d)
        return d
