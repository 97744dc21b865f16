"""appd's reloads and stops: SIGHUP under client loops (direct, kept
connections, through webd) fails no request; a reload's new workers run
the new module file and settings; a conf whose module does not load is
refused and the old workers keep serving; SIGTERM lets the requests in
progress finish."""
import os
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from appdtest import (AppdTest, Closed, Conn, Loop,  # noqa: E402
                           TESTAPP, get, wait_for)


def mapped_inodes(pid, path):
    out = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            for ln in f:
                p = ln.split()
                if len(p) >= 6 and p[5] == path:
                    out.add(int(p[4]))
    except OSError:
        pass
    return out


class KeptClient:
    """A client on one kept connection that, like webd, sends an
    idempotent request again on a new connection when a reused one was
    closed before any answer."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def ask(self, path):
        for attempt in range(2):
            reused = self.c is not None
            if self.c is None:
                self.c = Conn(self.port)
            try:
                r = self.c.request("GET", path)
            except (Closed, ConnectionError, OSError):
                self.c.close()
                self.c = None
                if reused:
                    continue
                raise
            if r.header("Connection") == "close":
                self.c.close()
                self.c = None
            return r
        raise AssertionError("unreachable")


class ReloadTest(AppdTest):
    def test_sighup_under_load_fails_nothing(self):
        a = self.appd(extra="pool dynamic\nstart-workers 2\nmin-spare 2\n"
                      "max-spare 4\nmax-workers 8\n").start()
        w = self.webd(a).start()
        kept = threading.local()

        def direct():
            r = get(a.port, "/t/hello")
            return r.status == 200, r.status

        def keepalive():
            if not hasattr(kept, "c"):
                kept.c = KeptClient(a.port)
            r = kept.c.ask("/t/hello")
            return r.status == 200, r.status

        def via_webd():
            r = w.get("/t/sleep?ms=20")
            return r.status == 200, r.status

        def post_direct():
            r = get(a.port, "/t/echo", method="POST", body=b"f=1",
                    headers=[("Content-Type",
                              "application/x-www-form-urlencoded")])
            return r.status == 200 and b'"form":"1"' in r.body, r.status

        loops = [Loop(direct, 2), Loop(keepalive, 2), Loop(via_webd, 3),
                 Loop(post_direct, 1)]
        for lp in loops:
            lp.__enter__()
        try:
            for gen in (2, 3, 4):
                time.sleep(0.4)
                old = set(a.workers())
                a.d.signal(signal.SIGHUP)
                self.syslog.wait(r"reload done: configuration generation "
                                 r"%d running" % gen, timeout=10,
                                 tree=a.d.pid)
                wait_for(lambda: not (set(a.workers()) & old), 10,
                         what="the old workers to leave")
            time.sleep(0.4)
        finally:
            for lp in loops:
                lp.__exit__()
        for lp in loops:
            self.assertGreater(lp.ok, 10)
            self.assertEqual(lp.failures, [])

    def test_reload_runs_the_new_module_file_and_settings(self):
        mod = os.path.join(self.dir, "m.so")
        shutil.copy(TESTAPP, mod)
        a = self.appd(extra="pool static\nworkers 2\n", module=mod,
                      appextra='set greeting "one"\n').start()
        self.assertEqual(a.get("/t/hello").body, b"one\n")
        ino1 = os.stat(mod).st_ino
        for p in a.workers():
            self.assertEqual(mapped_inodes(p, mod), {ino1})
        # install a new file (a new inode), as install(1) or mv do
        shutil.copy(TESTAPP, mod + ".new")
        os.rename(mod + ".new", mod)
        ino2 = os.stat(mod).st_ino
        self.assertNotEqual(ino1, ino2)
        a.rewrite(appextra='set greeting "two"\n')
        old = set(a.workers())
        a.d.signal(signal.SIGHUP)
        self.syslog.wait(rf"appd\[{a.d.pid}\]: reload done: configuration "
                         "generation 2 running")
        wait_for(lambda: not (set(a.workers()) & old), 10,
                 what="the old workers to leave")
        self.assertEqual(a.get("/t/hello").body, b"two\n")
        for p in a.workers():
            self.assertEqual(mapped_inodes(p, mod), {ino2})
        # the master never maps a module
        self.assertEqual(mapped_inodes(a.pid, mod), set())

    def test_reload_with_a_broken_module_keeps_serving(self):
        a = self.appd(extra="pool static\nworkers 2\n").start()
        # both: the test compares the pids with this set at the end
        a.wait_total(2)
        old = set(a.workers())
        bad = os.path.join(self.dir, "bad.so")
        with open(bad, "w") as f:
            f.write("garbage\n")
        a.rewrite(module=bad)
        a.d.signal(signal.SIGHUP)
        self.syslog.wait(r"module .*bad.so: ")
        self.syslog.wait("reload failed, keeping current configuration",
                         tree=a.d.pid)
        self.assertEqual(a.get("/t/hello").status, 200)
        self.assertEqual(set(a.workers()), old)
        # an init that fails in the new workers: refused too
        a.rewrite(module=TESTAPP, appextra="set fail-init 1\n")
        a.d.signal(signal.SIGHUP)
        self.syslog.wait(r"reload failed, keeping current configuration: "
                         r"worker \d of the new configuration exited",
                         tree=a.d.pid)
        self.assertEqual(a.get("/t/hello").status, 200)
        # the new generation's other workers are being killed
        wait_for(lambda: set(a.workers()) == old, 5,
                 what="only the old workers")

    def test_sigterm_finishes_requests_in_progress(self):
        a = self.appd(extra="pool static\nworkers 2\n").start(wait=True)
        out = []

        def slow():
            out.append(a.get("/t/sleep?ms=1000").status)
        t = threading.Thread(target=slow)
        t.start()
        wait_for(lambda: a.status()["active_processes"] == 1, 5,
                 what="the request to start")
        a.d.signal(signal.SIGTERM)
        t.join()
        self.assertEqual(out, [200])
        wait_for(lambda: not os.path.exists(a.d.pidfile), 5,
                 what="appd to stop")
