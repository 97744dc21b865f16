"""Crashes on the demo site: a webd killed (kill -9, the master and its
workers) until lbd's health check takes it out, then started again by
rc.d; an appd worker killed (respawned), then a whole appd killed (the
site answers through the other web/app pair once lbd's check, which goes
through appd, has reacted).  Each test measures the window in which
requests failed and prints it."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for                             # noqa: E402
from sitelib import Client, Loop, SiteTest               # noqa: E402


def api_read(client, i):
    """A read through every tier: lbd, webd, appd, dbrepd."""
    r = client.get("/api/notes?limit=1")
    if r.status != 200:
        return f"{r.status} {r.body[:80]!r}", r.served_by
    r.json()
    return None, r.served_by


def summary(loop, t0):
    fails = loop.failures()
    return (f"{len(fails)} of {len(loop.log)} requests failed" +
            (f", from +{fails[0][0] - t0:.2f}s to +{fails[-1][1] - t0:.2f}s"
             f" ({sorted(set(f[2] for f in fails))[:3]})" if fails else ""))


class FailoverTest(SiteTest):
    def setUp(self):
        super().setUp()
        self.site.heal()

    def run_loop(self, source):
        loop = Loop(self.site, source, api_read, rate=80)
        loop.start()
        self.addCleanup(loop.stop)
        wait_for(lambda: len(loop.log) >= 10, 5, what="the client loop")
        return loop

    def test_1_webd_killed_then_restarted(self):
        site = self.site
        lbd_rx = lambda text: site.syslog_rx("lbd", "lbd", text)  # noqa
        loop = self.run_loop("127.0.0.6")
        t_kill = time.time()
        killed = site.kill9("webd", "web1")
        t_down = site.wait_server("web1", False, timeout=10)
        self.syslog.wait(lbd_rx(r"server webs/web1 is DOWN"))
        before = list(loop.log)
        # once lbd has reacted: nothing fails, web2 answers everything
        n = len(loop.log)
        wait_for(lambda: len(loop.log) >= n + 60, 10, what="60 requests")
        after = [x for x in loop.log if x[0] > t_down]
        self.assertEqual(loop.failures(after=t_down), [])
        self.assertEqual({x[3] for x in after}, {"web2"})
        st, out, err = site.rc("webd", "status", "web1")
        self.assertEqual(st, 3, out + err)
        # started again through rc.d (its pidfile names a dead process)
        t_start = time.time()
        st, out, err = site.rc("webd", "start", "web1")
        self.assertEqual(st, 0, out + err)
        self.assertNotIn(site.pid("webd", "web1"), killed)
        t_up = site.wait_server("web1", True, timeout=10)
        self.syslog.wait(lbd_rx(r"server webs/web1 is UP"))
        n = len(loop.log)
        wait_for(lambda: len(loop.log) >= n + 40, 10, what="40 requests")
        loop.stop()
        up = [x for x in loop.log if x[0] > t_up]
        self.assertEqual({x[3] for x in up}, {"web1", "web2"})
        self.assertEqual(loop.failures(after=t_down), [])
        in_window = [x for x in before if x[0] >= t_kill]
        print(f"webd web1 killed: lbd saw it DOWN after "
              f"{t_down - t_kill:.2f}s (check every 1s, fall 2); in that "
              f"window {len(loop.failures(after=t_kill))} of "
              f"{len(in_window)} requests failed (lbd retries refused "
              f"connections on web2); 0 of {len(after)} after; restarted, "
              f"UP after {t_up - t_start:.2f}s")

    def test_2_appd_worker_killed(self):
        site = self.site
        master = site.pid("appd", "app1")
        workers = wait_for(lambda: site.workers("appd", "app1"), 5,
                           what="an appd worker")
        loop = self.run_loop("127.0.0.7")
        victim = workers[0]
        t_kill = time.time()
        os.kill(victim, signal.SIGKILL)
        line = self.syslog.wait(
            rf"appd\[{master}\]: worker \d+ \(pid {victim}\) killed by "
            r"signal 9.*respawning")
        wait_for(lambda: site.workers("appd", "app1") and
                 victim not in site.workers("appd", "app1"), 5,
                 what="a new appd worker")
        n = len(loop.log)
        wait_for(lambda: len(loop.log) >= n + 20, 10, what="20 requests")
        loop.stop()
        # app1 answers on: the same master, a new worker
        c = Client(site)
        for _ in range(5):
            j = c.get("/api/whoami", port=site.ports["web1"]).json()
            self.assertEqual(j["instance"], "app1")
            self.assertNotEqual(j["pid"], victim)
        self.assertEqual(site.pid("appd", "app1"), master)
        # only a request the worker was serving when killed may fail
        # (webd has no other app server to try it on)
        fails = loop.failures()
        self.assertEqual([f for f in fails if not f[0] <= t_kill <= f[1]],
                         [])
        self.assertLessEqual(len(fails), 1)
        print(f"appd worker killed: {line.split(': ', 1)[1]}; "
              f"{len(loop.log)} requests, {len(fails)} failed (in the "
              "killed worker's hands)")

    def test_3_appd_killed_then_restarted(self):
        site = self.site
        lbd_rx = lambda text: site.syslog_rx("lbd", "lbd", text)  # noqa
        loop = self.run_loop("127.0.0.8")
        t_kill = time.time()
        site.kill9("appd", "app1")
        # webd web1 has no app server left: what does it answer?
        r = Client(site).get("/api/notes", port=site.ports["web1"])
        self.assertIn(r.status, (502, 503), r)
        # lbd's check goes through appd (lbd/demo.conf): web1 goes DOWN
        t_down = site.wait_server("web1", False, timeout=10)
        self.syslog.wait(lbd_rx(r"server webs/web1 is DOWN"))
        n = len(loop.log)
        wait_for(lambda: len(loop.log) >= n + 60, 10, what="60 requests")
        self.assertEqual(loop.failures(after=t_down), [])
        window = loop.failures(after=t_kill)
        t_start = time.time()
        st, out, err = site.rc("appd", "start", "app1")
        self.assertEqual(st, 0, out + err)
        t_up = site.wait_server("web1", True, timeout=10)
        self.syslog.wait(lbd_rx(r"server webs/web1 is UP"))
        n = len(loop.log)
        wait_for(lambda: len(loop.log) >= n + 40, 10, what="40 requests")
        loop.stop()
        self.assertEqual(loop.failures(after=t_down), [])
        self.assertIn("web1", {x[3] for x in loop.log if x[0] > t_up})
        j = Client(site).get("/api/whoami",
                             port=site.ports["web1"]).json()
        self.assertEqual(j["instance"], "app1")
        print(f"appd app1 killed: web1 answered {r.status} for /api/; lbd "
              f"took web1 out after {t_down - t_kill:.2f}s; "
              f"{summary(loop, t_kill)}, {len(window)} of them in that "
              f"window, none after; restarted, web1 UP after "
              f"{t_up - t_start:.2f}s")
        # rise 2 at 1s: webd must not hold on to its appd's failures
        self.assertLess(t_up - t_start, 5)
