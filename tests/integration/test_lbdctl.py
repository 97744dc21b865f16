"""lbdctl and lbd's control socket (lbd/control.c, lbd/lbdctl.c): the
tables, drain (open requests finish, new ones go elsewhere, also on a
kept-alive client connection), maint and ready again, weights seen in
the distribution, /metrics following the changes, and errors: unknown
commands and servers, bad values, long lines, slow and surplus clients,
a socket that is not there."""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, TOP, log_time, wait_for         # noqa: E402
from httpc import Conn, get                               # noqa: E402
from test_lbd_checks import LbdCase, check, kill_now      # noqa: E402

INTERVAL = 300
CTL_TIMEOUT = 5.0        # LBD_CTL_TIMEOUT
CTL_MAXLINE = 1024       # LBD_CTL_MAXLINE
CTL_MAXCLIENTS = 16      # LBD_CTL_MAXCLIENTS


class CtlTest(LbdCase):
    def setup_two(self, weights=(1, 1), extra=""):
        self.webs = [self.backend(f"web{i}") for i in (1, 2)]
        ck = check("http", path="/hello", interval=f"{INTERVAL}ms",
                   timeout="200ms", rise=2, fall=3)
        self.lbd("backend webs {\n" + "\n".join(
            f"server {w.name} {w.addr} weight {wt}"
            for w, wt in zip(self.webs, weights)) + f"\n{ck}\n{extra}}}")
        self.wait_checked(["webs/web1", "webs/web2"])

    def who(self, n):
        """Which server answered each of <n> requests (new connections)."""
        out = []
        for _ in range(n):
            r = get(self.port, "/hello")
            self.assertEqual(r.status, 200, r)
            out.append(r.header("Server"))
        return out

    def raw(self, data, timeout=5.0):
        """Send <data> and our EOF on the control socket, read until it
        closes."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout * SLOW)
        s.connect(self.sock)
        with s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass        # it answered and closed first: read that
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return out.decode()
                out += d

    def test_show_servers_backends_help(self):
        self.setup_two()
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        rc, out, err = self.ctl("show", "servers")
        self.assertEqual((rc, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0].split(),
                         ["BACKEND", "SERVER", "ADDRESS", "STATE", "WEIGHT",
                          "CONNS", "LASTCHECK", "RESULT"])
        rows = [ln.split(None, 7) for ln in lines[1:]]
        self.assertEqual(len(rows), 2)
        for row, w in zip(rows, self.webs):
            self.assertEqual(row[:6], ["webs", w.name, w.addr, "UP", "1",
                                       "0"])
            self.assertRegex(row[6], r"^\d+\.\ds$")
            self.assertLess(float(row[6][:-1]), 2 * INTERVAL / 1000 * SLOW
                            + 0.5)
            self.assertEqual(row[7], "HTTP 200")
        # columns line up: every field starts where its header does
        starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
        for ln in lines[1:]:
            self.assertEqual([m.start() for m in
                              re.finditer(r"\S+", ln)][:7], starts[:7])
        rc, out2, _ = self.ctl("show", "servers", "webs")
        self.assertEqual(rc, 0)
        self.assertEqual(len(out2.splitlines()), 3)
        rc, out, _ = self.ctl("show", "backends")
        self.assertEqual(rc, 0)
        hdr, row = out.splitlines()
        self.assertEqual(hdr.split(), ["BACKEND", "MODE", "BALANCE",
                                       "SERVERS", "ACTIVE", "BACKUP",
                                       "CHECK"])
        self.assertEqual(row.split(None, 6),
                         ["webs", "http", "roundrobin", "2", "2", "0",
                          f"http GET /hello every {INTERVAL}ms, rise 2 "
                          f"fall 3"])
        rc, out, _ = self.ctl("help")
        self.assertEqual(rc, 0)
        self.assertIn("set server BACKEND/SERVER state ready|drain|maint",
                      out)

    def test_drain_open_requests_finish_new_ones_avoid(self):
        self.setup_two()
        # a kept-alive client connection, which has used both servers
        ka = Conn(self.port)
        self.addCleanup(ka.close)
        first = {ka.request("GET", "/hello").header("Server")
                 for _ in range(4)}
        self.assertEqual(first, {"web1", "web2"})
        slow = {}

        def slow_request():
            r = get(self.port, "/slow/1500", timeout=10)
            slow["r"] = r
            slow["t"] = time.monotonic()
        t = threading.Thread(target=slow_request, daemon=True)
        t.start()
        # the server that holds it
        busy = wait_for(lambda: [n for n, r in self.servers().items()
                                 if r["CONNS"] == "1"], 3,
                        what="the slow request on a server")
        self.assertEqual(len(busy), 1)
        victim = busy[0].split("/")[1]
        other = "web1" if victim == "web2" else "web2"
        rc, out, _ = self.ctl("set", "server", busy[0], "state", "drain")
        self.assertEqual(rc, 0)
        self.assertEqual(out, f"server webs/{victim} is now drain (was "
                         f"ready), 1 active left\n")
        drained_at = time.monotonic()
        self.wait_log(rf"server webs/{victim} set to drain \(was ready\) "
                      r"on the control socket, 1 active left")
        self.assertEqual(self.servers()[busy[0]]["STATE"], "DRAIN")
        m = self.metrics()
        self.assertEqual(m[("lbd_server_status", "webs", victim)], 3)
        self.assertEqual(m[("lbd_server_up", "webs", victim)], 0)
        # new requests: on new connections and on the kept-alive one
        self.assertEqual(set(self.who(10)), {other})
        self.assertEqual({ka.request("GET", "/hello").header("Server")
                          for _ in range(6)}, {other})
        # the one in flight finishes, on the drained server
        t.join(10 * SLOW)
        self.assertIn("r", slow, "the slow request did not finish")
        self.assertEqual((slow["r"].status, slow["r"].header("Server"),
                          slow["r"].body), (200, victim, b"slow\n"))
        self.assertGreater(slow["t"], drained_at)
        wait_for(lambda: self.servers()[busy[0]]["CONNS"] == "0", 3)
        # checks go on while it drains
        self.assertEqual(self.servers()[busy[0]]["RESULT"], "HTTP 200")
        rc, out, _ = self.ctl("set", "server", busy[0], "state", "ready")
        self.assertEqual(rc, 0)
        self.assertEqual(set(self.who(4)), {"web1", "web2"})

    def test_maint_then_ready(self):
        self.setup_two()
        rc, out, _ = self.ctl("set", "server", "webs/web2", "state", "maint")
        self.assertEqual((rc, out), (0, "server webs/web2 is now maint "
                                        "(was ready), 1 active left\n"))
        self.assertEqual(set(self.who(6)), {"web1"})
        self.assertEqual(self.servers()["webs/web2"]["STATE"], "MAINT")
        self.assertEqual(self.metrics()[("lbd_server_status", "webs",
                                         "web2")], 2)
        rc, out, _ = self.ctl("set", "server", "webs/web2", "state", "maint")
        self.assertEqual((rc, out), (0, "server webs/web2 is already "
                                        "maint\n"))
        # not checked in maintenance: the last check gets old
        wait_for(lambda: float(self.servers()["webs/web2"]["LASTCHECK"]
                               [:-1]) > 3 * INTERVAL / 1000, 5,
                 what="no checks in maint")
        self.assertLess(float(self.servers()["webs/web1"]["LASTCHECK"]
                              [:-1]), 2 * INTERVAL / 1000 * SLOW + 0.3)
        # it died meanwhile: back to ready, the first check decides
        kill_now(self.webs[1])
        rc, out, _ = self.ctl("set", "server", "webs/web2", "state",
                              "ready")
        self.assertEqual(rc, 0)
        # timed by the log lines' own times, not the test's clock
        down = self.wait_log(r"server webs/web2 is DOWN: connection "
                             r"refused, 1 active left")
        ready = self.logged(r"server webs/web2 set to ready")[-1]
        self.assertLess(log_time(down) - log_time(ready),
                        INTERVAL / 1000 * SLOW)
        self.assertEqual(self.servers()["webs/web2"]["STATE"], "DOWN")
        self.assertEqual(set(self.who(4)), {"web1"})
        # back in maintenance, repaired, ready: up at once, not after rise
        rc, _, _ = self.ctl("set", "server", "webs/web2", "state", "maint")
        self.assertEqual(rc, 0)
        self.webs[1].start()
        rc, _, _ = self.ctl("set", "server", "webs/web2", "state", "ready")
        self.assertEqual(rc, 0)
        up = self.wait_log(r"server webs/web2 is UP: HTTP 200, 2 active left")
        ready = self.logged(r"server webs/web2 set to ready")[-1]
        self.assertLess(log_time(up) - log_time(ready),
                        INTERVAL / 1000 * SLOW)
        self.assertEqual(self.metrics()[("lbd_server_status", "webs",
                                         "web2")], 1)
        self.assertEqual(set(self.who(4)), {"web1", "web2"})

    def test_weight_changes_the_distribution(self):
        self.setup_two()
        self.assertEqual(sorted(self.who(8)), ["web1"] * 4 + ["web2"] * 4)
        rc, out, _ = self.ctl("set", "server", "webs/web1", "weight", "3")
        self.assertEqual((rc, out), (0, "server webs/web1 weight is now 3 "
                                        "(was 1)\n"))
        self.wait_log(r"server webs/web1 weight set to 3 \(was 1\) on the "
                      r"control socket")
        got = self.who(40)
        self.assertLessEqual(abs(got.count("web1") - 30), 1, got)
        # smooth: web2 never waits more than three turns
        self.assertNotIn("web1" * 4, "".join(got[2:]))
        self.assertEqual(self.servers()["webs/web1"]["WEIGHT"], "3")
        self.assertEqual(self.metrics()[("lbd_server_weight", "webs",
                                         "web1")], 3)
        rc, _, _ = self.ctl("set", "server", "webs/web1", "weight", "0")
        self.assertEqual(rc, 0)
        self.assertEqual(set(self.who(6)), {"web2"})
        # no traffic: not "up" in the metrics, DRAIN as HAProxy shows it
        m = self.metrics()
        self.assertEqual((m[("lbd_server_up", "webs", "web1")],
                          m[("lbd_server_status", "webs", "web1")]), (0, 3))
        rc, _, _ = self.ctl("set", "server", "webs/web1", "weight", "256")
        self.assertEqual(rc, 0)

    def test_runtime_weight_and_reload(self):
        """A weight set with lbdctl outlives a reload that leaves the
        server's weight in the conf alone; a reload that changes it
        applies the conf's."""
        import signal
        self.setup_two()
        rc, _, _ = self.ctl("set", "server", "webs/web1", "weight", "3")
        self.assertEqual(rc, 0)
        conf = open(self.lb.conf_path).read()

        def reload(text):
            self.lb.write_conf(text)
            self.syslog.mark()
            self.lb.signal(signal.SIGHUP)
            self.syslog.wait(rf"lbd\[{self.lb.pid}\]: reload done", 10)
        reload(conf + "\n")
        self.assertEqual(self.servers()["webs/web1"]["WEIGHT"], "3")
        got = self.who(8)
        self.assertEqual(got.count("web1"), 6, got)
        reload(conf.replace(f"{self.webs[0].addr} weight 1",
                            f"{self.webs[0].addr} weight 2"))
        self.assertEqual(self.servers()["webs/web1"]["WEIGHT"], "2")
        self.assertEqual(self.servers()["webs/web2"]["WEIGHT"], "1")

    def test_failed_reload_leaves_the_weights(self):
        """A reload refused for an error elsewhere in the conf does not
        apply the new conf's weights (they went live while it was read)."""
        import signal
        self.setup_two()
        conf = open(self.lb.conf_path).read()
        self.lb.write_conf(conf.replace(f"{self.webs[0].addr} weight 1",
                                        f"{self.webs[0].addr} weight 5") +
                           "\nbackend broken {\nmode tcp\ncookie SRV\n"
                           "server x 127.0.0.1:9\n}\n")
        self.syslog.mark()
        self.lb.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{self.lb.pid}\]: reload failed", 10)
        self.assertEqual(self.servers()["webs/web1"]["WEIGHT"], "1")
        got = self.who(8)
        self.assertEqual(got.count("web1"), 4, got)

    def test_backups_when_every_weight_is_zero(self):
        """Weight 0 takes no new requests: with every normal server at 0
        the backup takes them, as with drain (before: 503 for all)."""
        ws = [self.backend(f"web{i}") for i in (1, 2, 3)]
        ck = check("http", path="/hello", interval=f"{INTERVAL}ms",
                   timeout="200ms", rise=2, fall=3)
        self.lbd(f"backend webs {{\nserver web1 {ws[0].addr}\n"
                 f"server web2 {ws[1].addr}\n"
                 f"server web3 {ws[2].addr} backup\n{ck}\n}}")
        self.wait_checked(["webs/web1", "webs/web2", "webs/web3"])
        self.assertEqual(set(self.who(4)), {"web1", "web2"})
        for w in ("web1", "web2"):
            rc, _, _ = self.ctl("set", "server", f"webs/{w}", "weight", "0")
            self.assertEqual(rc, 0)
        self.assertEqual(set(self.who(4)), {"web3"})
        # a server of weight 0 takes no traffic: not "active", as HAProxy
        # counts them
        rc, out, _ = self.ctl("set", "server", "webs/web2", "state", "maint")
        self.assertEqual((rc, out), (0, "server webs/web2 is now maint (was "
                                        "ready), 0 active and 1 backup "
                                        "left\n"))
        rc, _, _ = self.ctl("set", "server", "webs/web2", "state", "ready")
        rc, _, _ = self.ctl("set", "server", "webs/web1", "weight", "1")
        self.assertEqual(rc, 0)
        self.assertEqual(set(self.who(4)), {"web1"})

    def test_killed_worker_gives_back_its_server_connections(self):
        """A worker killed while it holds a server's only slot (maxconn
        1): the master takes the connection back, else the server looks
        full for good (every request queued, then 503)."""
        import signal
        from httpc import request_bytes
        web1 = self.backend("web1")
        self.lbd(f"backend webs {{\nserver web1 {web1.addr} maxconn 1\n"
                 f"queue-timeout 1s\n}}")
        c = Conn(self.port, timeout=30)
        self.addCleanup(c.close)
        c.send(request_bytes("GET", "/slow/20000"))
        wait_for(lambda: self.servers()["webs/web1"]["CONNS"] == "1", 5,
                 what="the slot taken")
        old = set(self.lb.workers())
        for w in old:
            os.kill(w, signal.SIGKILL)
        wait_for(lambda: len(set(self.lb.workers()) - old) == 2, 5,
                 what="new workers")
        time.sleep(0.3)
        r = get(self.port, "/hello")
        self.assertEqual((r.status, r.header("Server")), (200, "web1"))
        self.assertEqual(self.servers()["webs/web1"]["CONNS"], "0")
        self.syslog.wait(rf"lbd\[{self.lb.pid}\]: worker \d \(pid \d+\) "
                         rf"left \d+ connections? counted in shared memory: "
                         rf"taken back", 5)
        # the workers' deaths were the test's own doing
        self.syslog.mark()

    def test_reloads_never_reset_a_command(self):
        """lbdctl running while lbd reloads gets its answer every time:
        the leaving checker answers what it accepted, the next one the
        rest (it used to close accepted clients at once: a reset)."""
        import signal
        self.setup_two()
        stop = threading.Event()
        bad, done = [], [0]

        def hammer():
            while not stop.is_set():
                rc, out, err = self.ctl("show", "servers")
                done[0] += 1
                if rc != 0 or "webs" not in out:
                    bad.append((rc, out, err))
        t = threading.Thread(target=hammer)
        t.start()
        try:
            for i in range(16):
                self.syslog.mark()
                self.lb.signal(signal.SIGHUP)
                self.syslog.wait(rf"lbd\[{self.lb.pid}\]: reload done", 10)
                time.sleep(0.05)
        finally:
            stop.set()
            t.join()
        self.assertGreater(done[0], 16)
        self.assertEqual(bad, [])

    def test_errors_and_bounds(self):
        self.setup_two()
        # a slow client first: it must not hold the others up
        slow = socket.socket(socket.AF_UNIX)
        slow.connect(self.sock)
        slow.sendall(b"show ser")
        t_slow = time.monotonic()
        cases = [
            (["bogus"], 'error: unknown command "bogus"; try help\n'),
            (["set", "server", "webs/web9", "state", "drain"],
             "error: no server webs/web9\n"),
            (["set", "server", "nob/web1", "state", "drain"],
             "error: no server nob/web1 (no backend nob)\n"),
            (["set", "server", "web1", "state", "drain"],
             'error: "web1": expected BACKEND/SERVER\n'),
            (["set", "server", "webs/web1", "state", "sleepy"],
             'error: unknown state "sleepy" (ready, drain or maint)\n'),
            (["set", "server", "webs/web1", "weight", "257"],
             'error: weight "257" is too large (0-256)\n'),
            (["set", "server", "webs/web1", "weight", "-1"],
             'error: weight "-1" is too small (0-256)\n'),
            (["set", "server", "webs/web1", "weight", "x"],
             'error: weight "x" is invalid (0-256)\n'),
            (["set", "server", "webs/web1"],
             None),
            (["show", "servers", "nob"], "error: no backend nob\n"),
            (["show"], None),
        ]
        for words, want in cases:
            rc, out, err = self.ctl(*words)
            self.assertEqual(rc, 1, words)
            self.assertTrue(out.startswith("error: "), (words, out))
            if want is not None:
                self.assertEqual(out, want, words)
        # nothing changed
        self.assertEqual([r["STATE"] for r in self.servers().values()],
                         ["UP", "UP"])
        lb = os.path.join(os.path.dirname(self.lb.prog), "lbdctl")
        # no command; a socket that is not there; a line too long
        p = subprocess.run([lb], stderr=subprocess.PIPE, timeout=5)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"usage: lbdctl [-s socket] command", p.stderr)
        nosock = os.path.join(self.dir, "nothere.sock")
        p = subprocess.run([lb, "-s", nosock, "show", "servers"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=5)
        self.assertEqual((p.returncode, p.stdout), (1, b""))
        self.assertEqual(p.stderr.decode(), f"lbdctl: cannot connect to "
                         f"{nosock}: No such file or directory\n")
        p = subprocess.run([lb, "-s", self.sock, "show", "x" * 2000],
                           stderr=subprocess.PIPE, timeout=5)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"command too long", p.stderr)
        # the server's own bounds
        self.assertEqual(self.raw(b"a" * 3000 + b"\n"),
                         f"error: command longer than {CTL_MAXLINE - 1} "
                         "bytes\n")
        self.assertEqual(self.raw(b"\n"), "error: empty command; try "
                         "help\n")
        self.assertEqual(self.raw(b"show\x01servers\n"),
                         "error: control characters in the command\n")
        # a NUL too: it would have hidden the rest of the line
        self.assertEqual(self.raw(b"help\x00junk\n"),
                         "error: control characters in the command\n")
        # the last line may come without its newline
        self.assertTrue(self.raw(b"help").startswith("commands:"))
        # too many at once: the surplus is told so
        held = []
        for _ in range(CTL_MAXCLIENTS - 1):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock)
            held.append(s)
        wait_for(lambda: self.raw(b"").startswith("error: too many"), 3,
                 what="the surplus client refused")
        # lbdctl shows why, though its command found the socket closed
        for _ in range(3):
            rc, out, err = self.ctl("help")
            self.assertEqual((rc, out), (1, "error: too many control "
                                         "connections, try again\n"), err)
        for s in held:
            s.close()
        wait_for(lambda: self.ctl("help")[0] == 0, 3,
                 what="the control socket back")
        # the slow client is told off and dropped after the timeout
        slow.settimeout(CTL_TIMEOUT * 2 * SLOW)
        with slow:
            data = b""
            while True:
                d = slow.recv(4096)
                if not d:
                    break
                data += d
        waited = time.monotonic() - t_slow
        self.assertEqual(data.decode(), "error: timeout: no command within "
                         f"{int(CTL_TIMEOUT * 1000)} ms\n")
        self.assertGreater(waited, CTL_TIMEOUT - 0.5)
        self.assertLess(waited, CTL_TIMEOUT + 2 * SLOW)

    def test_man_page_lints(self):
        if shutil.which("mandoc") is None:
            self.skipTest("no mandoc")
        p = subprocess.run(["mandoc", "-Tlint", "-Wwarning",
                            os.path.join(TOP, "lbd", "lbdctl.8")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, ""))
