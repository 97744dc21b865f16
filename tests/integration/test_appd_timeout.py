"""appd's stuck and crashing requests: past request-timeout a request is
answered 504 (by appd directly, and passed on by webd) and its worker
replaced while other requests keep being served; a worker that ignores
SIGTERM is killed after kill-grace; idle kept connections are never
timed; slow requests are logged; a crash in the module kills only its
worker and that request gets 502 from webd."""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from appdtest import (AppdTest, Closed, Conn, SLOW,  # noqa: E402
                           get, wait_for)

T = "request-timeout 1s\nkill-grace 500ms\nslow-request 300ms\n"


class TimeoutTest(AppdTest):
    def start_appd(self, extra="", workers=2):
        a = self.appd(extra=f"pool static\nworkers {workers}\n" + T +
                      extra).start()
        # every worker up: the tests compare pids with this first set
        a.wait_total(workers)
        return a

    def others_served(self, port, stop, out):
        while not stop.is_set():
            out.append(get(port, "/t/hello").status)
            time.sleep(0.01)

    def timed(self, port, path, method="GET"):
        t0 = time.monotonic()
        try:
            r = get(port, path, method=method, timeout=15)
        except Closed:
            r = None
        return r, time.monotonic() - t0

    def test_stuck_request_answered_504(self):
        a = self.start_appd()
        w0 = set(a.workers())
        stop, others = threading.Event(), []
        t = threading.Thread(target=self.others_served,
                             args=(a.port, stop, others))
        t.start()
        try:
            r, dt = self.timed(a.port, "/t/sleep?ms=10000")
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.status, 504)
        self.assertEqual(r.header("Connection"), "close")
        self.assertIn(b"request-timeout", r.body)
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 3 * SLOW)
        self.assertGreater(len(others), 5)
        self.assertEqual(set(others), {200})
        line = self.syslog.wait(
            r'request timeout: worker \d \(pid (\d+)\) busy for \d+ ms with '
            r'"GET /t/sleep\?ms=10000 HTTP/1.1", stopping it', tree=a.pid)
        self.syslog.wait(r"exited with status 0: recycled, replacing it",
                         tree=a.pid)
        self.syslog.wait(r'slow request: worker \d \(pid \d+\) busy for '
                         r'\d+ ms with "GET /t/sleep\?ms=10000 HTTP/1.1"',
                         tree=a.pid)
        pid = int(line.split("(pid ")[1].split(")")[0])
        self.assertIn(pid, w0)
        wait_for(lambda: len(a.workers()) == 2 and pid not in a.workers(),
                 5, what="a new worker")
        m = a.metrics()
        self.assertEqual(m["appd_request_timeouts_total"], 1)
        self.assertGreaterEqual(m["appd_slow_requests_total"], 1)

    def test_busy_loop_answered_504(self):
        a = self.start_appd()
        r, dt = self.timed(a.port, "/t/spin?ms=10000")
        self.assertEqual(r.status, 504)
        self.assertLess(dt, 3 * SLOW)

    def test_sigterm_ignored_then_sigkill(self):
        a = self.start_appd()
        r, dt = self.timed(a.port, "/t/deaf?ms=10000")
        self.assertIsNone(r)            # closed without an answer
        self.assertGreaterEqual(dt, 1.4)
        self.assertLess(dt, 4 * SLOW)
        self.syslog.wait(r"worker \d \(pid \d+\) still running 500 ms after "
                         r"SIGTERM, killing it", tree=a.pid)
        self.syslog.wait(r"killed by signal 9 \(Killed\): recycled, "
                         r"replacing it", tree=a.pid)
        wait_for(lambda: len(a.workers()) == 2, 5, what="2 workers")
        self.assertEqual(a.get("/t/hello").status, 200)

    def test_idle_keepalive_connection_is_not_timed(self):
        a = self.start_appd(extra="keepalive-timeout 10s\n", workers=1)
        with Conn(a.port) as c:
            p1 = c.request("GET", "/t/pid").body
            time.sleep(1.6)             # idle longer than request-timeout
            r = c.request("GET", "/t/pid")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, p1)
        self.assertFalse([ln for ln in self.syslog.lines()
                          if f"appd[{a.pid}]: request timeout" in ln])

    def test_slow_request_logged(self):
        a = self.start_appd()
        self.assertEqual(a.get("/t/sleep?ms=700").status, 200)
        self.syslog.wait(r'slow request: worker \d \(pid \d+\) busy for '
                         r'\d+ ms with "GET /t/sleep\?ms=700 HTTP/1.1"')
        self.assertEqual(a.metrics()["appd_slow_requests_total"], 1)

    def test_timeout_504_through_webd(self):
        a = self.start_appd()
        w = self.webd(a).start()
        stop, others = threading.Event(), []
        t = threading.Thread(target=self.others_served,
                             args=(w.port, stop, others))
        t.start()
        try:
            r, dt = self.timed(w.port, "/t/sleep?ms=10000")
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.status, 504)
        self.assertLess(dt, 3 * SLOW)
        self.assertGreater(len(others), 5)
        self.assertEqual(set(others), {200})

    def test_module_told_its_client_left(self):
        """A browser gives up on a long request: webd closes its
        connection to appd, and a module that asks app_client_gone()
        stops there (testapp's /watch returns 499) rather than work on
        for no one; its worker is free for the next request at once."""
        a = self.start_appd(workers=1)
        w = self.webd(a).start()
        with socket.create_connection(("127.0.0.1", w.port)) as c:
            c.sendall(b"GET /t/watch?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
        line = self.syslog.wait(r"testapp: client gone after (\d+) ms", 5,
                                tree=a.pid)
        ms = int(re.search(r"after (\d+) ms", line).group(1))
        self.assertGreaterEqual(ms, 200)
        self.assertLess(ms, 2000)
        t0 = time.monotonic()
        self.assertEqual(get(w.port, "/t/hello").status, 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        # a client that stays gets the whole answer
        r = get(w.port, "/t/watch?ms=300")
        self.assertEqual((r.status, r.body), (200, b"watched 300\n"))

    def test_crash_502_for_that_request_only(self):
        a = self.start_appd()
        w = self.webd(a).start()
        stop, others = threading.Event(), []
        t = threading.Thread(target=self.others_served,
                             args=(w.port, stop, others))
        t.start()
        try:
            r = w.get("/t/crash", method="POST", body=b"x")
            time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.status, 502)
        self.assertGreater(len(others), 5)
        self.assertEqual(set(others), {200})
        self.syslog.wait(r"appd\[%d\]: worker \d \(pid \d+\) killed by "
                         r"signal 6 \(Aborted\), respawning" % a.pid)
        wait_for(lambda: len(a.workers()) == 2, 5, what="2 workers")
        self.assertEqual(w.get("/t/hello").status, 200)
