"""dbrepd semi-synchronous replication: a commit answered only once the
quorum holds it (and it is visible there), the timeout that fails with
"indeterminate", the one that degrades to async loudly and recovers."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    DbrepError, DbrepTest, DBREP_EINDETERMINATE, children, cmdline_of,
    wait_for)


def repl_pid(node):
    return [c for c in children(node.d.pid)
            if "replication" in cmdline_of(c)][0]


class Quorum(DbrepTest):
    def test_commit_waits_for_the_replica(self):
        p, r = self.pair(pextra="durability quorum 1 timeout 5s")
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        with p.client() as c, r.client() as cr:
            for i in range(50):
                w = c.q("INSERT INTO t VALUES(?, 'x')", i)
                # remote apply: visible on the replica without waiting
                self.assertEqual(cr.q("SELECT count(*) FROM t").rows,
                                 [(i + 1,)])
                self.assertGreaterEqual(cr.q("SELECT 1").lsn, w.lsn)
        mp = p.metrics()
        self.assertGreaterEqual(mp["dbrepd_semisync_waits_total"], 50)
        self.assertEqual(mp["dbrepd_semisync_timeouts_total"], 0)

    def test_timeout_fails_indeterminate(self):
        p, r = self.pair(pextra="durability quorum 1 timeout 400ms "
                         "on-timeout fail", timeout="10s")
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        pid = repl_pid(r)
        os.kill(pid, signal.SIGSTOP)
        try:
            with p.client() as c:
                t0 = time.time()
                with self.assertRaises(DbrepError) as e:
                    c.q("INSERT INTO t VALUES(1, 'a')")
                took = time.time() - t0
                self.assertEqual(e.exception.code, DBREP_EINDETERMINATE)
                self.assertIn("indeterminate", "indeterminate " +
                              e.exception.msg)
                self.assertGreaterEqual(took, 0.35)
                self.assertLess(took, 3)
                # committed locally: the primary has it
                self.assertEqual(c.q("SELECT v FROM t").rows, [("a",)])
                self.assertEqual(e.exception.lsn, c.q("SELECT 1").lsn)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.converge(p, r)
        with p.client() as c:
            c.q("INSERT INTO t VALUES(2, 'b')")     # answered again
        mp = p.metrics()
        self.assertEqual(mp["dbrepd_semisync_timeouts_total"], 1)

    def test_timeout_degrades_loudly_and_recovers(self):
        p, r = self.pair(pextra="durability quorum 1 timeout 300ms "
                         "on-timeout degrade", timeout="10s")
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        pid = repl_pid(r)
        os.kill(pid, signal.SIGSTOP)
        try:
            with p.client() as c:
                t0 = time.time()
                c.q("INSERT INTO t VALUES(1, 'a')")
                self.assertGreaterEqual(time.time() - t0, 0.25)
                self.syslog.wait(r"DEGRADED to asynchronous")
                st = p.status()
                self.assertIn("degraded yes", st["durability"])
                t0 = time.time()
                for i in range(2, 12):
                    c.q("INSERT INTO t VALUES(?, 'b')", i)
                # no waiting: 300 ms a commit would be 3 s
                self.assertLess(time.time() - t0, 2.5)
                wait_for(lambda: p.metrics()["dbrepd_semisync_degraded"] ==
                         1, 3, what="the degraded gauge")
        finally:
            os.kill(pid, signal.SIGCONT)
        # (the log line may be another node's: the syslog is shared)
        wait_for(lambda: "degraded no" in p.status()["durability"], 5,
                 what="semi-synchronous replication restored")
        self.syslog.wait(r"semi-synchronous replication restored")
        self.converge(p, r)
        wait_for(lambda: p.metrics()["dbrepd_semisync_degraded"] == 0, 3,
                 what="the degraded gauge to clear")

    def test_quorum_of_two(self):
        p = self.node("db1", extra="durability quorum 2 timeout 400ms",
                      timeout="10s").start()
        r1 = self.node("db2", role="replica", primary=p.repl,
                       timeout="10s").start()
        r2 = self.node("db3", role="replica", primary=p.repl,
                       timeout="10s").start()
        self.wait_streaming(p, "db2", "db3")
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            c.q("INSERT INTO t VALUES(1)")
        pid = repl_pid(r2)
        os.kill(pid, signal.SIGSTOP)
        try:
            with p.client() as c:
                with self.assertRaises(DbrepError) as e:
                    c.q("INSERT INTO t VALUES(2)")
                self.assertEqual(e.exception.code, DBREP_EINDETERMINATE)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: p.status()["quorum_lsn"] == str(p.lsn()), 10,
                 what="the quorum to catch up")
        with p.client() as c:
            c.q("INSERT INTO t VALUES(3)")
        self.converge(p, r1, r2)
