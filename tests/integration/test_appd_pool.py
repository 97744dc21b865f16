"""appd's pool: the conf check, the dynamic pool growing under load and
shrinking back to min-spare, "pool full", recycling after max-requests
and max-rss, RLIMIT_AS, and the status process (/status, ?json,
/metrics, /ping) answering while every worker is busy."""
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import SANITIZE, busy_poll_check, wait_value  # noqa: E402
from appdtest import (AppdTest, Conn, SLOW, TESTAPP,  # noqa: E402
                           get)


class PoolTest(AppdTest):
    def test_configtest(self):
        a = self.appd(extra="pool dynamic\nmin-spare 2\nmax-spare 4\n"
                      "max-workers 8\nrequest-timeout 10s\n"
                      "slow-request 2s\n")
        rc, out = a.d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"))
        p = a.d.conf_path
        bad = [
            ("pool dynamic\nmin-spare 5\nmax-spare 2\n",
             r":\d+: min-spare 5 is above max-spare 2"),
            ("pool dynamic\nmax-spare 9\nmax-workers 4\n",
             r":\d+: max-spare 9 is above max-workers 4"),
            ("pool dynamic\nworkers 3\n", r":\d+: workers is for a static"),
            ("pool static\nmax-workers 3\n",
             r":\d+: max-workers is for a dynamic pool"),
            ("request-timeout 5s\nslow-request 5s\n",
             r":\d+: slow-request \(5000 ms\) must be below "
             r"request-timeout"),
            ("max-rss 1g\nrlimit-as 512m\n",
             r":\d+: max-rss must be below rlimit-as"),
            ("route \"/x/\" app nosuch\n", r':\d+: route /x/: no app '
             r'"nosuch"'),
            ("route \"/c/\" cgi \"/nonexistent\"\n",
             r":\d+: route /c/: /nonexistent: No such file"),
        ]
        for extra, msg in bad:
            a.rewrite(extra=extra)
            rc, out = a.d.run("-n")
            self.assertEqual(rc, 1, extra)
            self.assertRegex(out, re.escape(p) + msg)
        # a module that is not one: the loader's error, file and line
        notmod = os.path.join(self.dir, "notmod.so")
        with open(notmod, "w") as f:
            f.write("not an ELF file\n")
        a.rewrite(extra="", module=notmod)
        rc, out = a.d.run("-n")
        self.assertEqual(rc, 1)
        self.assertRegex(out, re.escape(p) + r":\d+: module " +
                         re.escape(notmod) + ": .*(invalid ELF|too short)")
        a.rewrite(module="/usr/lib/x86_64-linux-gnu/libm.so.6")
        rc, out = a.d.run("-n")
        self.assertEqual(rc, 1)
        self.assertIn("no app_module symbol", out)

    def test_grows_under_load_and_shrinks_to_min_spare(self):
        a = self.appd(extra="pool dynamic\nstart-workers 1\nmin-spare 1\n"
                      "max-spare 2\nmax-workers 8\nspawn-rate 50\n"
                      "idle-timeout 1s\n").start()
        a.wait_total(1)
        n = 6
        results = []

        def slow():
            results.append(a.get("/t/sleep?ms=%d" % (2000 * SLOW)).status)
        ts = [threading.Thread(target=slow) for _ in range(n)]
        for t in ts:
            t.start()
        # every request gets a worker: the pool grows to n busy + spares
        st = wait_value(a.status, lambda s: s["active_processes"] == n, 5,
                        what=f"{n} active workers")
        self.assertGreaterEqual(st["total_processes"], n)
        self.assertLessEqual(st["total_processes"], 8)
        for t in ts:
            t.join()
        self.assertEqual(results, [200] * n)
        # idle again: down to max-spare, then to min-spare
        a.wait_total(1, timeout=15)
        self.syslog.wait(r"pool: stopping idle worker \d+ \(pid \d+\): "
                         r"\d+ idle for a second, above max-spare 2")
        self.syslog.wait(r"pool: stopping idle worker \d+ \(pid \d+\): "
                         r"more than min-spare 1 idle for 1000 ms")
        m = a.metrics()
        self.assertGreaterEqual(m["appd_pool_spawned_total"], n - 1)
        self.assertGreaterEqual(m["appd_pool_retired_total"], n - 1)
        self.assertEqual(a.get("/t/hello").status, 200)

    def test_pool_full_and_status_while_busy(self):
        a = self.appd(extra="pool static\nworkers 2\n").start()
        a.wait_total(2)
        out = []

        def slow():
            out.append(a.get("/t/sleep?ms=%d" % (1500 * SLOW)).status)
        ts = [threading.Thread(target=slow) for _ in range(4)]
        for t in ts:
            t.start()
        # the status process answers while both workers are busy, and
        # sees the two other requests in the listen queue.  A worker that
        # has accepted but not yet read the head is active and "reading":
        # wait until both are past that.
        def both_busy(s):
            busy = [w for w in s["workers"] if w["state"] == "busy"]
            return (s["active_processes"] == 2 and s["listen_queue"] == 2
                    and len(busy) == 2)
        st = wait_value(a.status, both_busy, 5, what="2 busy and 2 queued")
        self.assertEqual(st["idle_processes"], 0)
        self.assertEqual(st["listen_queue_len"], 511)
        busy = [w for w in st["workers"] if w["state"] == "busy"]
        self.assertEqual(len(busy), 2)
        for w in busy:
            self.assertRegex(w["request"], r"^GET /t/sleep\?ms=\d+ HTTP/1.1$")
        self.assertTrue(get(a.sport, "/ping").body == b"pong\n")
        self.syslog.wait(r"appd\[\d+\]: pool full: 2 workers busy, requests "
                         r"wait in the listen queue")
        for t in ts:
            t.join()
        self.assertEqual(out, [200] * 4)
        st = a.status()
        self.assertGreaterEqual(st["max_children_reached"], 1)
        self.assertGreaterEqual(st["max_listen_queue"], 2)
        self.assertGreaterEqual(st["max_active_processes"], 2)
        self.assertEqual(st["process_manager"], "static")
        text = get(a.sport, "/status").body.decode()
        self.assertRegex(text, r"max children reached: +[1-9]")
        self.assertRegex(text, r"accepted conn: +\d+")
        self.assertRegex(text, r"listen queue len: +511")

    def test_busy_poll(self):
        # appd's workers poll a kept connection in a loop of their own
        def start(extra):
            a = self.appd(extra="pool static\nworkers 1\n" + extra,
                          name=f"bp{len(extra)}").start()
            a.wait_total(1)
            (w,) = a.workers()
            c = Conn(a.port)

            def request():
                self.assertEqual(c.request("GET", "/t/hello").status, 200)

            def stop():
                c.close()
                a.d.stop()
            return w, [], request, stop
        busy_poll_check(self, start)

    def test_metrics_and_ping(self):
        a = self.appd(extra="pool static\nworkers 1\n").start()
        for _ in range(3):
            self.assertEqual(a.get("/t/hello").status, 200)
        self.assertEqual(a.get("/t/nothing").status, 404)
        self.assertEqual(a.get("/ping").body, b"pong\n")     # main listener
        r = get(a.sport, "/metrics")
        self.assertEqual(r.header("Content-Type"),
                         "text/plain; version=0.0.4; charset=utf-8")
        body = r.body.decode()
        for fam in ("appd_requests_total", "appd_request_duration_seconds",
                    "appd_accepted_connections_total",
                    "appd_max_workers_reached_total",
                    "appd_slow_requests_total", "appd_active_workers",
                    "appd_idle_workers", "appd_listen_queue",
                    "appd_worker_requests",
                    "appd_worker_request_duration_seconds"):
            self.assertIn(f"# TYPE {fam} ", body)
        # a worker counts a request just after sending its answer, and
        # the status process serves /metrics: wait for the last one
        def counted(m):
            done = sum(v for k, v in m.items()
                       if k.startswith("appd_worker_requests{"))
            return done >= 5 and m.get('appd_requests_total{code="2xx"}',
                                       0) >= 4
        m = wait_value(a.metrics, counted, 5, what="the last request counted")
        self.assertEqual(m['appd_requests_total{code="2xx"}'], 4)
        self.assertEqual(m['appd_requests_total{code="4xx"}'], 1)
        self.assertEqual(m["appd_total_workers"], 1)
        slot = [k for k in m if k.startswith("appd_worker_requests{")]
        self.assertEqual(len(slot), 1)
        self.assertEqual(m[slot[0]], 5)
        self.assertEqual(get(a.sport, "/nothing").status, 404)

    def test_max_requests_recycles(self):
        a = self.appd(extra="pool static\nworkers 1\nmax-requests 3\n")
        a.start()
        pids = []
        with Conn(a.port) as c:          # one kept connection
            for _ in range(3):
                r = c.request("GET", "/t/pid")
                self.assertEqual(r.status, 200)
                pids.append(int(r.body))
            # the third answer closed the connection
            self.assertEqual(r.header("Connection"), "close")
        for _ in range(4):
            r = a.get("/t/pid")
            self.assertEqual(r.status, 200)
            pids.append(int(r.body))
        self.assertEqual(len(set(pids[:3])), 1)
        self.assertEqual(len(set(pids[3:6])), 1)
        self.assertNotEqual(pids[0], pids[3])
        self.assertNotEqual(pids[3], pids[6])
        self.syslog.wait(r"worker 1 \(pid %d\) exited with status 0: "
                         r"recycled, served 3 requests \(max-requests\), "
                         r"replacing it" % pids[0])
        self.assertEqual(a.metrics()[
            'appd_recycled_workers_total{reason="max-requests"}'], 2)

    def test_max_rss_recycles(self):
        a = self.appd(extra="pool static\nworkers 1\nmax-rss 48m\n").start()
        p1 = int(a.get("/t/pid").body)
        r = a.get("/t/alloc?mb=16")
        self.assertEqual(r.status, 200)
        self.assertEqual(int(a.get("/t/pid").body), p1)    # under the limit
        with Conn(a.port) as c:
            r = c.request("GET", "/t/alloc?mb=48")
            self.assertEqual(r.status, 200)                 # answered...
            self.assertEqual(r.header("Connection"), "close")
        self.syslog.wait(r"worker 1 \(pid %d\) exited with status 0: "
                         r"recycled, RSS \d+ KiB above max-rss 49152 KiB"
                         % p1)
        p2 = int(a.get("/t/pid").body)                      # ...then gone
        self.assertNotEqual(p1, p2)

    @unittest.skipIf(SANITIZE, "AddressSanitizer maps terabytes of shadow")
    def test_rlimit_as(self):
        a = self.appd(extra="pool static\nworkers 1\nrlimit-as 1g\n").start()
        w = a.workers()[0]
        with open(f"/proc/{w}/limits") as f:
            line = [ln for ln in f if ln.startswith("Max address space")][0]
        self.assertEqual(line.split()[3], str(1 << 30))
        # an allocation beyond the limit fails in the app, not the worker
        self.assertEqual(a.get("/t/alloc?mb=2000").status, 503)
        self.assertEqual(a.get("/t/hello").status, 200)
        self.assertEqual(a.workers(), [w])

    def test_module_init_and_settings(self):
        a = self.appd(extra="pool static\nworkers 2\nname app7\n",
                      appextra='set greeting "bonjour"\nset number 42\n')
        a.start()
        self.assertEqual(a.get("/t/hello").body, b"bonjour\n")
        self.assertEqual(a.get("/t/init").body, b"bonjour 1 42 test\n")
        self.assertIn(b'"instance":"app7"', a.get("/t/echo").body)
        # a module whose init fails: the workers do not start
        b = self.appd(name="appd2", extra="pool static\nworkers 1\n",
                      appextra="set fail-init 1\n")
        b.start(wait=False)
        self.syslog.wait(r"app test \(testapp\): init failed")
        self.syslog.wait(r"worker 1 \(pid \d+\) exited with status 1, "
                         r"respawning")
        self.assertTrue(os.path.exists(TESTAPP))
        time.sleep(0.1)
