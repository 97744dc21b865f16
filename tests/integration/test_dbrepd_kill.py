"""dbrepd crash atomicity (I7): a replica killed with SIGKILL at random
points of applying the log, and of receiving and installing a snapshot,
50 rounds each.  After every kill the database passes PRAGMA
integrity_check and sits at a record boundary (a snapshot is there whole
or not at all); at the end the replica converges with the primary."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    DbrepTest, SLOW, digest, sqlite3_cli, wait_for)

ROUNDS = 50


def position(node):
    """(integrity, lsn, rows, the LSN the rows say) of a stopped node."""
    out = sqlite3_cli(node.db, "PRAGMA integrity_check; "
                      "SELECT max(lsn) FROM _dbrep_log; "
                      "SELECT count(*), coalesce(max(seq), 0) FROM w").split()
    ok, lsn, rows = out[0], int(out[1]), out[2].split("|")
    return ok, lsn, int(rows[0]), int(rows[1])


class Kill(DbrepTest):
    def setup_primary(self, extra=""):
        p = self.node("db1", extra=extra).start()
        with p.client() as c:
            # seq: the LSN of the record that wrote the row, so a
            # replica's rows can be checked against its own LSN
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, seq INT, v BLOB)")
        return p

    def test_kill_replica_during_apply(self):
        p = self.setup_primary()
        stop = threading.Event()

        def load():
            with p.client() as c:
                while not stop.is_set():
                    lsn = c.q("SELECT 1").lsn + 1
                    c.query([(f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL "
                              f"SELECT i + 1 FROM s WHERE i < 40) INSERT "
                              f"INTO w(seq, v) SELECT {lsn}, "
                              f"randomblob(800) FROM s", ())])
                    time.sleep(0.003)

        th = threading.Thread(target=load)
        th.start()
        r = self.node("db2", role="replica", primary=p.repl)
        rng = random.Random(int(os.environ.get("SEED", time.time())))
        try:
            for k in range(ROUNDS):
                r.start()
                time.sleep(rng.uniform(0.02, 0.25) * SLOW)
                r.kill9()
                ok, lsn, rows, seq = position(r)
                self.assertEqual(ok, "ok", f"round {k}")
                # whole records only: 40 rows per record, the last
                # record applied is the last LSN
                self.assertEqual(rows % 40, 0, f"round {k}: {rows} rows")
                self.assertLessEqual(seq, lsn, f"round {k}")
        finally:
            stop.set()
            th.join()
        r.start()
        self.converge(p, r, timeout=30)
        # what a crash left half received is gone
        self.assertEqual([f for f in os.listdir(self.dir)
                          if f.startswith("db2.db.snap")], [])
        self.assertEqual(self.assert_log_chain(r), p.lsn())

    def test_kill_replica_during_snapshot(self):
        p = self.setup_primary("log-min-records 5\nlog-max-records 20")
        with p.client() as c:
            for i in range(30):
                c.q("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT "
                    "i + 1 FROM s WHERE i < 100) INSERT INTO w(seq, v) "
                    "SELECT 0, randomblob(1000) FROM s")
        r = self.node("db2", role="replica", primary=p.repl)
        rng = random.Random(int(os.environ.get("SEED", time.time())))
        old = None

        def pruned_past(lsn):
            wait_for(lambda: int(p.status()["log"].split()[1]) > lsn + 1,
                     5, what="the primary to prune its log")

        pruned_past(0)
        installed = killed_mid = 0
        r.start()
        t0 = time.time()
        wait_for(lambda: r.status()["snapshots_installed"] == "1", 20,
                 step=0.002, what="the first snapshot")
        sync = time.time() - t0
        r.kill9()
        old = digest(r.db)
        for k in range(ROUNDS):
            # move the primary past what the replica holds: it needs a
            # new snapshot (its LSN is out of the retained log)
            with p.client() as c:
                for i in range(25):
                    c.q("INSERT INTO w(seq, v) VALUES(0, randomblob(100))")
            pruned_past(position(r)[1])
            new = digest(p.db)
            r.start()
            time.sleep(rng.uniform(0, sync * 1.2))
            r.kill9()
            self.assertEqual(position(r)[0], "ok", f"round {k}")
            now = digest(r.db)
            # the old database or the new one, never a mix
            self.assertIn(now, (old, new), f"round {k}")
            installed += now == new
            killed_mid += now == old
            old = now
        print(f"snapshot kill rounds: {installed} installed, {killed_mid} "
              f"killed before the install committed", file=sys.stderr)
        r.start()
        self.converge(p, r, timeout=30)
