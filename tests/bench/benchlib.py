"""Helpers for the side-by-side benchmarks (webd vs nginx, lbd vs HAProxy):
start servers pinned to a core, drive them with wrk pinned to the other,
alternate ours and the anchor in the same run, report medians and ratios.

The machine is shared and its speed drifts (see the perf notes): only the
ratios of one run mean something, so every row runs ours and the anchor
in turn, ROUNDS times, and compares their medians.
"""
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.environ.get("TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(TOP, BUILD, "bin")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
# a regular expression: run only the rows whose label it finds (case
# ignored), to repeat one row as an A/B: BENCH_ROWS='TLS keep-alive, 1 w'
ROWS = os.environ.get("BENCH_ROWS")
NCPU = os.cpu_count() or 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def pin_prefix(cpu):
    """taskset prefix for a command, when the machine has the cores."""
    if NCPU < 2 or cpu is None:
        return []
    return ["taskset", "-c", str(cpu)]


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(st[1]) == p:
                out.append(int(d))
                todo.append(int(d))
    return out


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            total += int(st[11]) + int(st[12])
        except OSError:
            pass
    return total


WRK_LAT = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$")
WRK_MEAN = re.compile(r"^\s+Latency\s+([\d.]+)(us|ms|s)\s")


def to_ms(v, unit):
    return float(v) / 1000 if unit == "us" else \
        float(v) * 1000 if unit == "s" else float(v)


def wrk(url, conns=50, seconds=SECONDS, threads=1, headers=(), cpu=1,
        think_ms=0):
    """Run wrk; returns (requests/s, p99 ms, errors, mean latency ms,
    wrk's own CPU use in CPUs: 1.0 is a core kept busy).
    With think_ms, each connection waits that long between a response and
    its next request: a fixed offered load below saturation, the same for
    both servers, where latency is the server's own and not the queue of
    a saturated client.  There the rate says little: wrk's delay() is a
    timer of millisecond granularity whose slack (0.3-0.5 ms a cycle,
    measured) varies with the phase of the answers; the latencies are
    what such a row compares."""
    cmd = pin_prefix(cpu) + ["wrk", f"-t{threads}", f"-c{conns}",
                             f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    script = None
    if think_ms:
        fd, script = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(f"function delay() return {think_ms} end\n")
        cmd += ["-s", script]
    cmd.append(url)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=seconds + 30
                             ).stdout.decode()
    finally:
        if script:
            os.unlink(script)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / \
        max(time.monotonic() - t0, 1e-3)
    rps = p99 = mean = None
    errors = 0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        m = WRK_LAT.match(line)
        if m and m.group(1) == "99":
            p99 = to_ms(m.group(2), m.group(3))
        m = WRK_MEAN.match(line)
        if m:
            mean = to_ms(m.group(1), m.group(2))
        if "Socket errors" in line:
            errors += sum(int(x) for x in re.findall(r"\d+", line))
        if "Non-2xx" in line:
            errors += int(line.split()[-1])
    if rps is None:
        raise RuntimeError("wrk failed:\n" + out)
    return rps, p99 or 0.0, errors, mean or 0.0, busy


class Server:
    """A daemon started with a command line, stopped by its pid."""

    def __init__(self, name, cmd, port, cpu=0, env=None):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(pin_prefix(cpu) + cmd,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        wait_port(port)
        time.sleep(0.3)

    def pids(self):
        return [self.proc.pid] + descendants(self.proc.pid)

    def stop(self):
        for p in reversed(self.pids()):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()


def hold_idle(port, n, request=None, tls_ctx=None):
    """Open n idle connections to port; returns the sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 1000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.connect(("127.0.0.1", port))
        if request is not None:
            s.sendall(request)
        socks.append(s)
        if request is not None and (i % 200 == 199 or i == n - 1):
            # read the answers of the last wave
            for t in socks[-200:]:
                t.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    c = t.recv(65536)
                    if not c:
                        break
                    data += c
    return socks


def idle_rss(starts, request, n=10000):
    """RSS per 1,000 idle keep-alive connections, in MB, for each of
    starts: (name, start) pairs, start() giving a fresh Server.  Fresh,
    because a server that has run the other rows may hold freed memory
    that the idle connections then reuse without growing its RSS (a
    figure below the connections' own state).  Each is warmed with one
    request and measured alone; the count of established connections is
    checked, so that connections left in a backlog count for nothing."""
    res = {}
    for name, start in starts:
        srv = start()
        try:
            for s in hold_idle(srv.port, 1, request):
                s.close()
            time.sleep(0.5)
            before = rss_kib(srv.pids())
            socks = hold_idle(srv.port, n, request)
            time.sleep(1)
            after = rss_kib(srv.pids())
            est = subprocess.run(
                ["ss", "-Htn", "state", "established",
                 f"( sport = :{srv.port} )"],
                capture_output=True, text=True).stdout.count("\n")
            for s in socks:
                s.close()
            if est < n:
                print(f"{name}: only {est} of {n} connections established",
                      file=sys.stderr)
            res[name] = (after - before) * 1000 / n / 1024
        finally:
            srv.stop()
        time.sleep(1)
    return res


def median(xs):
    return statistics.median(xs) if xs else 0.0


def busiest_share(port):
    """The share of the established connections to <port> that its
    busiest process holds (1.0: one worker has them all), or None."""
    out = subprocess.run(["ss", "-tnpH", "state", "established",
                          f"( sport = :{port} )"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    count = {}
    for pid in re.findall(r"pid=(\d+)", out):
        count[pid] = count.get(pid, 0) + 1
    total = sum(count.values())
    return max(count.values()) / total if total else None


def wanted(label):
    """Whether BENCH_ROWS, if set, selects the row <label>."""
    return ROWS is None or re.search(ROWS, label, re.I) is not None


def alternate(label, servers, workers, headers=(), think_ms=0):
    """One row: wrk against each of servers, [(name, Server, url)] with
    ours first and the anchor second, in turn ROUNDS times (pinned to
    CPU 1 with one worker).  Returns (label, ours_rps, anchor_rps,
    ours_p99, anchor_p99, extra), extra holding the medians of
    "mean" (latency, ms; rows with a think time), "cpu" (each server's
    CPU time per request, us, all its processes) and "client" (wrk's
    CPU use: near 1.0, wrk and not the server set the rate); with
    several workers, "share" (the busiest worker's share of wrk's
    connections, sampled 1.5 s into each run: a server whose
    connections all went to one worker runs as one worker beside wrk,
    at a lower rate and a lower saturated p99).  None for a row that
    BENCH_ROWS leaves out."""
    if not wanted(label):
        return None
    res = {name: [] for name, _, _ in servers}
    share = {name: [] for name, _, _ in servers}
    cpu = 1 if workers == 1 else None
    for _ in range(ROUNDS):
        for name, srv, url in servers:
            pids = srv.pids()
            t0 = cpu_ticks(pids)
            timer = None
            # (a connection per request lives too short to be seen)
            if workers > 1 and not any("close" in h for h in headers):
                port = int(re.search(r":(\d+)/", url).group(1))
                timer = threading.Timer(
                    1.5, lambda n=name, p=port: share[n].append(
                        busiest_share(p)))
                timer.start()
            r = wrk(url, headers=headers, cpu=cpu, think_ms=think_ms)
            if timer is not None:
                timer.join()
            used = (cpu_ticks(pids) - t0) / os.sysconf("SC_CLK_TCK")
            res[name].append(r + (used * 1e6 / max(r[0] * SECONDS, 1),))
    (a, ra), (b, rb) = ((n, res[n]) for n, _, _ in servers)

    def m(rs, i):
        return median([x[i] for x in rs])
    extra = {"cpu": (m(ra, 5), m(rb, 5)), "client": (m(ra, 4), m(rb, 4))}
    sa, sb = ([x for x in share[n] if x is not None] for n in (a, b))
    if sa and sb:
        extra["share"] = (sa, sb)
    if think_ms:
        extra["mean"] = (m(ra, 3), m(rb, 3))
    return (label, m(ra, 0), m(rb, 0), m(ra, 1), m(rb, 1), extra)


def table(rows, ours, anchor):
    """Print rows of (label, ours_rps, anchor_rps, ours_p99, anchor_p99,
    extra) as alternate() makes them, with lines under each: the mean
    latencies of a row with a think time and their ratio anchor / ours
    (above 1.0: ours answers sooner); each server's CPU time per request
    and its ratio anchor / ours (above 1.0: ours spends less), with
    wrk's CPU use (a row where wrk keeps a core busy measures wrk); with
    several workers, the busiest worker's share of the connections in
    each round, ours then the anchor's.  Rows of None are left out."""
    rows = [r for r in rows if r is not None]
    if not rows:
        return
    print(f"{'row':<36} {ours:>10} {anchor:>10} {'ratio':>6} "
          f"{'p99 ' + ours:>12} {'p99 ' + anchor:>12}")
    for label, a, b, pa, pb, extra in rows:
        ratio = a / b if b else 0
        print(f"{label:<36} {a:>10.0f} {b:>10.0f} {ratio:>6.2f} "
              f"{pa:>10.2f}ms {pb:>10.2f}ms")
        if "mean" in extra:
            ma, mb = extra["mean"]
            print(f"{'  mean latency (ratio ' + anchor + '/' + ours + ')':<36}"
                  f" {ma:>8.3f}ms {mb:>8.3f}ms "
                  f"{mb / ma if ma else 0:>6.2f}")
        if "cpu" in extra:
            ca, cb = extra["cpu"]
            wa, wb = extra["client"]
            print(f"{'  server CPU/request (' + anchor + '/' + ours + ')':<36}"
                  f" {ca:>8.1f}us {cb:>8.1f}us "
                  f"{cb / ca if ca else 0:>6.2f}   wrk CPU {wa:.2f} / {wb:.2f}")
        if "share" in extra:
            sa, sb = extra["share"]
            print(f"{'  busiest worker, share of conns':<36} "
                  f"{' '.join(f'{x:.2f}' for x in sa):>10} "
                  f"{' '.join(f'{x:.2f}' for x in sb):>10}")
    sys.stdout.flush()


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            model = [l.split(":", 1)[1].strip() for l in f
                     if l.startswith("model name")][0]
    except (OSError, IndexError):
        model = "?"
    return f"{NCPU} CPU ({model}), {os.uname().release}"
