"""dbrepd under faults: cycles of blackhole, reset, delay, throttle and
half-open links between a replica and its primary (the replica
reconnects and converges); a bank workload read on a replica that must
never show a state the primary never had (I2, I3); a primary whose disk
fills up (nothing half-committed, recovery once space returns)."""
import os
import pwd
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    Client, DbrepError, DbrepTest, SQLITE_FULL, integrity, sqlite3_cli,
    wait_for, writer_storm)
from faultproxy import FaultProxy  # noqa: E402

ACCOUNTS = 20
TOTAL = ACCOUNTS * 1000


class Chaos(DbrepTest):
    def proxied_pair(self, **kw):
        p = self.node("db1", **kw).start()
        fp = FaultProxy(p.repl).start()
        self.addCleanup(fp.stop)
        r = self.node("db2", role="replica", primary=fp.addr, **kw).start()
        return p, r, fp

    def test_link_fault_cycles(self):
        p, r, fp = self.proxied_pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        stop = threading.Event()

        def load():
            with p.client() as c:
                i = 0
                while not stop.is_set():
                    c.q("INSERT INTO w VALUES(?, ?)", i,
                        "x" * random.choice((10, 100, 5000)))
                    i += 1
                    time.sleep(0.004)

        th = threading.Thread(target=load)
        th.start()
        try:
            cycle = [("blackhole", {}, 2.6), ("pass", {}, 0.8),
                     ("reset", {}, 0.3), ("pass", {}, 0.8),
                     ("delay", {"ms": 150}, 1.2), ("pass", {}, 0.5),
                     ("throttle", {"bps": 32768}, 1.2), ("pass", {}, 0.8),
                     ("halfopen", {}, 2.6), ("pass", {}, 0.5)]
            for mode, kw, secs in cycle:
                fp.set(mode, **kw)
                time.sleep(secs)
        finally:
            stop.set()
            th.join()
        self.converge(p, r, timeout=30)
        self.assert_no_snapshot(r)
        m = r.metrics()
        self.assertGreaterEqual(m["dbrepd_replication_connects_total"], 4)
        wait_for(lambda: r.metrics()["dbrepd_replication_lag_records"] == 0
                 and p.status()["replicas"]["db2"]["lag_records"] == "0",
                 5, what="lag to return to 0")
        self.assertEqual(integrity(r.db), "ok")
        self.assertEqual(self.assert_log_chain(r), p.lsn())

    def test_bank_prefix_consistency(self):
        p, r, fp = self.proxied_pair()
        with p.client() as c:
            c.q("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT NOT "
                "NULL)")
            c.q("CREATE TABLE marks(id INTEGER PRIMARY KEY)")
            c.q("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                f"FROM s WHERE i < {ACCOUNTS}) INSERT INTO acct SELECT i, "
                "1000 FROM s")
        self.converge(p, r)
        stop = threading.Event()
        bad, reads, transfers, crashed = [], [0], [0], []

        def guarded(f):
            def run(*a):
                try:
                    f(*a)
                except Exception as e:      # reported by the test
                    crashed.append(repr(e))
                    stop.set()
            return run

        @guarded
        def transfer(seed):
            rnd = random.Random(seed)
            with p.client() as c:
                while not stop.is_set():
                    a, b = rnd.sample(range(1, ACCOUNTS + 1), 2)
                    amt = rnd.randint(1, 300)
                    c.query([("UPDATE acct SET bal = bal - ? WHERE id = ?",
                              (amt, a)),
                             ("UPDATE acct SET bal = bal + ? WHERE id = ?",
                              (amt, b)),
                             ("INSERT INTO marks SELECT coalesce(max(id), "
                              "0) + 1 FROM marks", ())])
                    transfers[0] += 1

        @guarded
        def audit():
            last = 0
            with r.client() as c:
                while not stop.is_set():
                    res = c.query([("SELECT sum(bal) FROM acct", ()),
                                   ("SELECT count(*), coalesce(max(id), 0) "
                                    "FROM marks", ())])
                    total = res.sets[0][1][0][0]
                    n, mx = res.sets[1][1][0]
                    reads[0] += 1
                    if total != TOTAL or n != mx or res.lsn < last:
                        bad.append((res.lsn, total, n, mx, last))
                    last = res.lsn

        threads = [threading.Thread(target=transfer, args=(k,))
                   for k in range(2)]
        threads += [threading.Thread(target=audit) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for mode, ms in (("delay", 30), ("pass", 0), ("delay", 5),
                             ("reset", 0), ("pass", 0)):
                fp.set(mode, ms=ms)
                time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(crashed, [])
        self.assertEqual(bad, [], "states the primary never had")
        self.assertGreater(transfers[0], 100)
        self.assertGreater(reads[0], 100)
        print(f"bank: {transfers[0]} transfers, {reads[0]} audited reads",
              file=sys.stderr)
        self.converge(p, r)
        self.assert_no_snapshot(r)

    def test_disk_full_on_primary(self):
        fsdir = os.path.join(self.dir, "full")
        os.mkdir(fsdir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                        fsdir], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", fsdir])
        nobody = pwd.getpwnam("nobody")
        os.chown(fsdir, nobody.pw_uid, nobody.pw_gid)
        p = self.node("db1")
        p.db = os.path.join(fsdir, "db1.db")
        p.rewrite()
        p.start()
        r = self.node("db2", role="replica", primary=p.repl).start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB)")
        balloon = os.path.join(fsdir, "balloon")
        st = os.statvfs(fsdir)
        with open(balloon, "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 1536 * 1024))
        acked, errors = [], []
        with p.client() as c:
            for i in range(2000):
                try:
                    c.query([("INSERT INTO w VALUES(?, randomblob(4000))",
                              (i,)),
                             ("INSERT INTO w VALUES(?, randomblob(4000))",
                              (-i - 1,))])
                    acked.append(i)
                except DbrepError as e:
                    errors.append(e)
                    if len(errors) >= 5:
                        break
        self.assertTrue(errors, "the disk never filled")
        self.assertEqual(errors[0].code, SQLITE_FULL, errors[0].msg)
        # nothing half-committed: every request is all there or absent
        with p.client() as c:
            rows = {x[0] for x in c.q("SELECT id FROM w").rows}
            self.assertEqual(rows, set(acked) | {-i - 1 for i in acked})
            lsn = c.q("SELECT max(lsn) FROM _dbrep_log").rows[0][0]
            self.assertEqual(lsn, 2 + len(acked))
        self.assertEqual(integrity(p.db), "ok")
        os.unlink(balloon)
        with p.client() as c:
            c.q("INSERT INTO w VALUES(100000, 'after')")
        self.converge(p, r)
        self.assertEqual(self.assert_log_chain(r), p.lsn())
