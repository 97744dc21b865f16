"""The site across hosts for the end-to-end tests (tests/e2e/test_lab_*.py).

Each test module brings up its own lab once (tests/e2e/lab.sh up, with
the namespaces "lt<pid>-HOST" and its state in the module's folder under
$RESULTS/tmp) and takes it down after, also when a test fails or the
module is stopped: every process in the lab's namespaces is killed, the
namespaces are removed, and the root namespace's guard route goes with
the last lab.  Every client runs inside a host's namespace (labclient.py
under ip netns exec); this process never sends a packet to the lab.

Where namespaces cannot be made (not root, no iproute2, nftables or
keepalived, a kernel without them) the module's tests are skipped, with
the reason."""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

from harness import workdir, RESULTS, SLOW, TOP, alive, children, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_SH = os.path.join(HERE, "lab.sh")
CLIENT = os.path.join(HERE, "labclient.py")
RCDIR = os.path.join(TOP, "rc.d")
sys.path.insert(0, os.path.join(HERE, "hosts"))
import labgen  # noqa: E402

PY = sys.executable


def cannot_lab():
    """Why no lab can be made here, or None."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    for prog in ("ip", "nft", "keepalived", "curl", "openssl", "flock",
                 "unshare"):
        if shutil.which(prog) is None and not os.path.exists(
                "/usr/sbin/" + prog):
            return f"{prog} is not installed (make deps-test)"
    p = subprocess.run(["unshare", "--net", "ip", "link", "add", "lt-probe",
                        "type", "veth", "peer", "name", "lt-probe2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        return ("cannot make a network namespace with a veth pair: " +
                p.stdout.decode(errors="replace").strip())
    return None


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if alive(p):
            out.append(p)
        todo.extend(children(p))
    return out


class Lab:
    """One lab: namespaces PREFIX-HOST, state in STATE."""

    def __init__(self, prefix, state, site=labgen.SITE, settings=None,
                 extra=None):
        self.prefix = prefix
        self.state = state
        if settings or extra:
            # the description, with lines of our own after its own: "set"
            # lines (the later wins), more hosts
            os.makedirs(state, exist_ok=True)
            mine = os.path.join(state, "site.txt")
            with open(site) as f, open(mine, "w") as o:
                o.write(f.read())
                o.write("\n# the test's own\n")
                for k, v in (settings or {}).items():
                    o.write(f"set {k} {v}\n")
                for ln in extra or ():
                    o.write(ln + "\n")
            site = mine
        self.site = labgen.Site(site)
        self.env = dict(os.environ, LAB=state, LAB_PREFIX=prefix,
                        SITE=site)
        self.vip = str(self.site.vip)
        self.name = self.site.settings["server-name"]
        self.ca = os.path.join(state, "keys", "site.crt")
        self.is_up = False
        self.vrrp_pids = {}

    # the lab as a whole

    def sh(self, *args, timeout=120):
        p = subprocess.run(["sh", LAB_SH, *args], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def up(self):
        self.is_up = True
        t0 = time.time()
        rc, out = self.sh("up")
        if rc != 0:
            raise AssertionError(f"lab.sh up failed ({rc}):\n{out}")
        self.up_time = time.time() - t0
        self.note_vrrp()
        return out

    def down(self):
        rc, out = self.sh("down")
        self.is_up = False
        left = [n for n in self.namespaces()]
        if rc != 0 or left:
            raise AssertionError(f"lab.sh down ({rc}) left {left}:\n{out}")
        return out

    def namespaces(self):
        p = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE)
        return [ln.split()[0] for ln in p.stdout.decode().splitlines()
                if ln.startswith(self.prefix + "-")]

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def addr(self, host):
        return str(self.site.host(host).addr)

    def port(self, name):
        return self.site.ports[name]

    def hostdir(self, host, *p):
        return os.path.join(self.state, host, *p)

    # commands on a host

    def exec(self, host, *cmd, timeout=30, check=False):
        """CMD on HOST (lab.sh exec): (rc, stdout, stderr)."""
        p = subprocess.run(["sh", LAB_SH, "exec", host, *cmd], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout * SLOW)
        r = (p.returncode, p.stdout.decode(errors="replace"),
             p.stderr.decode(errors="replace"))
        if check and r[0] != 0:
            raise AssertionError(f"on {host}: {' '.join(cmd)}: exit {r[0]}"
                                 f"\n{r[1]}{r[2]}")
        return r

    def rc(self, host, daemon, cmd, check=True):
        if daemon == "keepalived":
            self.note_vrrp()
        r = self.exec(host, os.path.join(RCDIR, daemon), cmd, timeout=60,
                      check=check)
        if daemon == "keepalived":
            self.note_vrrp()
        return r

    def pid(self, host, daemon):
        try:
            with open(self.hostdir(host, "run", daemon + ".pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def kill9(self, host, daemon):
        """kill -9 the daemon's master and every process of it, as a
        crash; returns once they are gone."""
        pid = self.pid(host, daemon)
        assert pid, f"{daemon} does not run on {host}"
        # stopped, the master forks nothing after the list is taken
        os.kill(pid, signal.SIGSTOP)
        pids = tree(pid)
        for p in pids:              # the master first: no respawn
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not any(alive(p) for p in pids), 5,
                 what=f"{daemon} on {host} to die")
        return pids

    def curl(self, host, url, *opts, timeout=2):
        """GET url from host with curl: (rc, body)."""
        p = subprocess.run(["ip", "netns", "exec", self.ns(host), "curl",
                            "-sS", "--max-time", str(timeout), *opts, url],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout + 10)
        return p.returncode, p.stdout.decode(errors="replace")

    def probe(self, host, targets, http=False, timeout=1.0):
        """labclient.py probe from host: {target: result}."""
        args = ["ip", "netns", "exec", self.ns(host), PY, CLIENT, "probe",
                "--timeout", str(timeout)]
        if http:
            args.append("--http")
        p = subprocess.run(args + list(targets), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            raise AssertionError("probe: " + p.stderr.decode())
        return json.loads(p.stdout)

    def metrics(self, host, port_name, frm="mon"):
        """The Prometheus text of host's listener, read from frm:
        {(name, ((label, value), ...)): value}."""
        rc, text = self.curl(frm, f"http://{self.addr(host)}:"
                             f"{self.port(port_name)}/metrics", "-f")
        if rc != 0:
            return None
        out = {}
        for ln in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", ln)
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"',
                                                 m.group(2) or "")))
                out[(m.group(1), labels)] = float(m.group(3))
        return out

    def server_up(self, lb, server):
        m = self.metrics(lb, "lbd-stats")
        if m is None:
            return None
        return m.get(("lbd_server_up", (("backend", "webs"),
                                        ("server", server))))

    # the network

    def vip_holder(self):
        """The lb hosts that hold the service address now."""
        out = []
        for h in self.site.role("lb"):
            p = subprocess.run(["ip", "-n", self.ns(h.name), "-4", "addr",
                                "show", "dev",
                                self.site.settings["interface"]],
                               stdout=subprocess.PIPE)
            if f"inet {self.vip}/" in p.stdout.decode():
                out.append(h.name)
        return out

    def wait_vip(self, host, timeout=10):
        wait_for(lambda: self.vip_holder() == [host], timeout, step=0.02,
                 what=f"the service address on {host} alone")
        return time.time()

    def link(self, host, state):
        rc, out = self.sh("link", host, state)
        assert rc == 0, out

    def partition(self, a, b):
        rc, out = self.sh("partition", a, b)
        assert rc == 0, out

    def heal(self):
        rc, out = self.sh("heal")
        assert rc == 0, out

    def ensure_master(self, host="lb1"):
        """Move the service address to host by hand, as the runbook says:
        keepalived stopped on the holder, then started again (it comes
        back a backup: nopreempt).  Returns the seconds it took, 0 when
        host held it already."""
        held = self.vip_holder()
        if held == [host]:
            return 0.0
        t0 = time.time()
        for h in held:
            self.rc(h, "keepalived", "stop")
        self.wait_vip(host)
        took = time.time() - t0
        for h in held:
            self.rc(h, "keepalived", "start")
        return took

    # keepalived's lines in the syslog

    def syslog_path(self):
        own = os.path.join(self.state, "log", "syslog.log")
        return own if os.path.exists(own) else os.path.join(RESULTS,
                                                            "syslog.log")

    def keepalived_pid(self, host):
        try:
            with open(self.hostdir(host, "run",
                                   "keepalived-vrrp.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def note_vrrp(self):
        """Remember the VRRP process of each lb host (its syslog lines
        name its pid only)."""
        for h in self.site.role("lb"):
            pid = self.keepalived_pid(h.name)
            if pid:
                self.vrrp_pids.setdefault(h.name, set()).add(pid)

    def vrrp_states(self, host, since=0.0):
        """[(time, state)] of host's VRRP instance from `since` on, from
        the syslog ("(site) Entering MASTER STATE")."""
        self.note_vrrp()
        pids = self.vrrp_pids.get(host, set())
        rx = re.compile(r"^(\S+) \S+ Keepalived_vrrp\[(\d+)\]: \(site\) "
                        r"Entering (\w+) STATE")
        out = []
        try:
            f = open(self.syslog_path(), errors="replace")
        except OSError:
            return out
        with f:
            for ln in f:
                m = rx.match(ln)
                if m and int(m.group(2)) in pids:
                    t = _rfc3339(m.group(1))
                    if t >= since:
                        out.append((t, m.group(3)))
        return out


def _rfc3339(s):
    from datetime import datetime
    return datetime.fromisoformat(s).timestamp()


class Loop:
    """labclient.py loop in a host's namespace, its records in a file."""

    def __init__(self, lab, url, host="client", rate=40, threads=4,
                 timeout=1.0, post=False, resume=False, name="loop"):
        self.lab = lab
        self.out = os.path.join(lab.state, f"{name}-{time.time():.0f}.json")
        args = ["ip", "netns", "exec", lab.ns(host), PY, CLIENT, "loop",
                url, "--connect", lab.vip, "--ca",
                lab.hostdir(host, "keys", "site.crt"), "--rate", str(rate),
                "--threads", str(threads), "--timeout", str(timeout),
                "--seconds", "600", "--out", self.out]
        if post:
            args.append("--post")
        if resume:
            args.append("--resume")
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                  stderr=open(self.out + ".err", "w"))
        wait_for(lambda: len(self.ok()) >= 2 * threads, 10,
                 what="the client loop's first answers")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def records(self):
        out = []
        try:
            with open(self.out) as f:
                for ln in f:
                    if ln.endswith("\n"):
                        out.append(json.loads(ln))
        except OSError:
            pass
        out.sort(key=lambda r: r["t0"])
        return out

    @staticmethod
    def good(r):
        return r["status"] in (200, 201)

    def ok(self, after=0.0):
        return [r for r in self.records() if self.good(r) and r["t0"] >=
                after]

    def failed(self, after=0.0, before=float("inf")):
        return [r for r in self.records() if not self.good(r) and
                after <= r["t0"] < before]

    def wait_more(self, n, timeout=10):
        """Until n more requests have ended."""
        k = len(self.records())
        wait_for(lambda: len(self.records()) >= k + n, timeout,
                 what=f"{n} more requests")

    def longest_gap(self, after, before=float("inf")):
        """The longest time without an answer, between `after` and the
        first answer after `before`: from an answer's end to the next
        one's (answers ordered by their end), or from `after` itself."""
        ends = sorted(r["t1"] for r in self.records() if self.good(r))
        prev = after
        gap, at = 0.0, after
        for t in ends:
            if t <= after:
                continue
            if t - prev > gap:
                gap, at = t - prev, prev
            prev = t
            if t > before:
                break
        return gap, at


class LabTest(unittest.TestCase):
    """A module's lab: up once for the test class, down after."""

    lab = None
    settings = None         # "set" lines over site.txt's
    extra = None            # more lines: hosts

    @classmethod
    def setUpClass(cls):
        why = cannot_lab()
        if why:
            raise unittest.SkipTest(why)
        cls.dir = workdir(cls.__module__)
        cls.lab = Lab(f"lt{os.getpid()}", os.path.join(cls.dir, "lab"),
                      settings=cls.settings, extra=cls.extra)
        # down on the way out, whatever happens (the runner's SIGTERM
        # included)
        atexit.register(cls._down_quietly)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        try:
            cls.lab.up()
        except BaseException:
            cls._down_quietly()
            raise
        print(f"lab {cls.lab.prefix} up in {cls.lab.up_time:.1f}s, state "
              f"{cls.lab.state}", flush=True)

    @classmethod
    def _down_quietly(cls):
        if cls.lab is not None and cls.lab.is_up:
            try:
                cls.lab.down()
            except Exception as e:              # noqa: BLE001
                print(f"lab down: {e}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        if cls.lab is not None and cls.lab.is_up:
            cls.lab.down()
