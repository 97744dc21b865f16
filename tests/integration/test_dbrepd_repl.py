"""dbrepd replication: streaming and convergence (I4), the log's chain
(I5), schema changes of every kind under load, the hazard zoo, a far
behind replica brought back by a snapshot under load, retention held by
the slowest replica."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import wait_value  # noqa: E402
from dbreptest import (  # noqa: E402
    DBREP_ELSNWAIT, DbrepError, DbrepTest, children, cmdline_of, digest,
    integrity, sqlite3_cli, wait_for, writer_storm)


class Replication(DbrepTest):
    def test_stream_converge_chain(self):
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        threads = [threading.Thread(target=writer_storm,
                                    args=(p.sock, 150, k * 1000))
                   for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lsn = self.converge(p, r)
        self.assert_no_snapshot(r)
        self.assertGreaterEqual(lsn, 452)
        self.assertEqual(self.assert_log_chain(p), lsn)
        self.assertEqual(self.assert_log_chain(r), lsn)
        for n in (p, r):
            self.assertEqual(integrity(n.db), "ok")
        # the replica applies, then acks: the primary learns a moment later
        st = wait_value(p.status,
                        lambda s: s["replicas"]["db2"]["acked"] == str(lsn),
                        5, what="the replica's ack")
        self.assertEqual(st["replicas"]["db2"]["acked"], str(lsn))
        self.assertEqual(st["replicas"]["db2"]["lag_records"], "0")

    def test_schema_changes_under_load(self):
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        stop = threading.Event()
        th = threading.Thread(target=writer_storm,
                              args=(p.sock, 100000, 0), kwargs={"stop": stop})
        th.start()
        ddl = [
            "CREATE TABLE a(id INTEGER PRIMARY KEY, x TEXT, y INT)",
            "INSERT INTO a(x, y) VALUES('one', 1), ('two', 2)",
            "CREATE INDEX a_y ON a(y)",
            "ALTER TABLE a ADD COLUMN z TEXT DEFAULT 'zz'",
            "UPDATE a SET z = x || '!'",
            "ALTER TABLE a RENAME COLUMN x TO xx",
            "DROP INDEX a_y",
            "ALTER TABLE a DROP COLUMN y",
            "ALTER TABLE a RENAME TO b",
            "CREATE VIEW bv AS SELECT id, xx FROM b",
            "CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT)",
            "CREATE TRIGGER b_ins AFTER INSERT ON b BEGIN "
            "INSERT INTO log(what) VALUES('b ' || new.id); END",
            "INSERT INTO b(xx) VALUES('three')",
            "CREATE TABLE gone(id INTEGER PRIMARY KEY)",
            "INSERT INTO gone VALUES(1)",
            "DROP TABLE gone",
            "CREATE INDEX b_z ON b(z)",
            "PRAGMA user_version = 42",
            "PRAGMA application_id = 7",
            "ANALYZE",
            "CREATE TABLE kv(k TEXT NOT NULL PRIMARY KEY, v) WITHOUT ROWID",
        ]
        with p.client() as c:
            for sql in ddl:
                c.q(sql)
                time.sleep(0.02)
            # DDL and DML mixed in one transaction, applied atomically
            c.query([("INSERT INTO kv VALUES('a', 1)", ()),
                     ("ALTER TABLE kv ADD COLUMN w TEXT", ()),
                     ("INSERT INTO kv VALUES('b', 2, 'w')", ()),
                     ("CREATE TABLE mix(id INTEGER PRIMARY KEY, k TEXT)", ()),
                     ("INSERT INTO mix(k) SELECT k FROM kv", ()),
                     ("UPDATE b SET z = 'mixed'", ()),
                     ("DROP VIEW bv", ())])
        stop.set()
        th.join()
        self.converge(p, r)
        self.assert_no_snapshot(r)
        for sql in ("SELECT sql FROM sqlite_schema ORDER BY name",
                    "PRAGMA user_version", "PRAGMA application_id",
                    "SELECT * FROM sqlite_stat1 ORDER BY tbl, idx"):
            self.assertEqual(sqlite3_cli(r.db, sql), sqlite3_cli(p.db, sql),
                             sql)
        self.assertEqual(sqlite3_cli(r.db, "SELECT * FROM kv ORDER BY k"),
                         "a|1|\nb|2|w\n")
        # the trigger exists on the replica, but did not fire there:
        # log holds exactly the primary's rows
        self.assertEqual(sqlite3_cli(r.db, "SELECT count(*) FROM log"),
                         "1\n")

    def test_hazard_zoo(self):
        p, r = self.pair()
        zoo = [
            # triggers, recursive ones too (Debian's default is ON)
            "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT NOT NULL)",
            "CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "acct INT, delta INT, at TEXT DEFAULT (datetime('now')))",
            "CREATE TRIGGER acct_upd AFTER UPDATE ON acct BEGIN "
            "INSERT INTO audit(acct, delta) VALUES(new.id, "
            "new.bal - old.bal); END",
            "CREATE TABLE chain(id INTEGER PRIMARY KEY, n INT)",
            "CREATE TRIGGER chain_ins AFTER INSERT ON chain WHEN new.n > 0 "
            "BEGIN INSERT INTO chain(n) VALUES(new.n - 1); END",
            # foreign keys with cascades
            "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT)",
            "CREATE TABLE child(id INTEGER PRIMARY KEY, parent INT "
            "REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE, "
            "x TEXT)",
            # non-deterministic defaults
            "CREATE TABLE nd(id INTEGER PRIMARY KEY, "
            "r INT DEFAULT (random()), t TEXT DEFAULT (datetime('now')), "
            "b BLOB DEFAULT (randomblob(8)))",
            # a unique column whose values swap
            "CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL)",
            # FTS5, external content kept by triggers
            "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)",
            "CREATE VIRTUAL TABLE fts USING fts5(body, content='docs', "
            "content_rowid='id')",
            "CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN "
            "INSERT INTO fts(rowid, body) VALUES(new.id, new.body); END",
            "CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN "
            "INSERT INTO fts(fts, rowid, body) VALUES('delete', old.id, "
            "old.body); END",
            "CREATE VIRTUAL TABLE plain USING fts5(a, b)",
        ]
        with p.client() as c:
            for sql in zoo:
                c.q(sql)
            c.q("INSERT INTO acct VALUES(1, 100), (2, 100)")
            c.q("UPDATE acct SET bal = bal - 10 WHERE id = 1")
            c.q("INSERT INTO chain(n) VALUES(5)")
            c.q("INSERT INTO parent VALUES(1, 'p1'), (2, 'p2')")
            c.q("INSERT INTO child VALUES(1, 1, 'a'), (2, 1, 'b'), "
                "(3, 2, 'c')")
            c.q("UPDATE parent SET id = 10 WHERE id = 2")
            c.q("DELETE FROM parent WHERE id = 1")
            for _ in range(5):
                c.q("INSERT INTO nd DEFAULT VALUES")
            # AUTOINCREMENT: insert and delete the top id in one
            # transaction; sqlite_sequence must still say 3 on the replica
            c.query([("INSERT INTO audit(acct, delta) VALUES(0, 0)", ()),
                     ("DELETE FROM audit WHERE id = (SELECT max(id) "
                      "FROM audit)", ())])
            c.q("INSERT INTO u VALUES(1, 'a'), (2, 'b'), (3, 'c')")
            c.query([("UPDATE u SET k = 'tmp' WHERE id = 1", ()),
                     ("UPDATE u SET k = 'a' WHERE id = 2", ()),
                     ("UPDATE u SET k = 'b' WHERE id = 1", ())])
            c.query([("UPDATE u SET k = 'x' WHERE id = 3", ()),
                     ("UPDATE u SET k = 'c' WHERE id = 2", ()),
                     ("UPDATE u SET k = 'a' WHERE id = 3", ())])
            for i in range(20):
                c.q("INSERT INTO docs(body) VALUES(?)",
                    f"document {i} about {'cats' if i % 2 else 'dogs'}")
            c.q("DELETE FROM docs WHERE id IN (3, 4)")
            c.q("INSERT INTO plain VALUES('hello world', 'x')")
            seq = c.q("SELECT seq FROM sqlite_sequence WHERE name = "
                      "'audit'").rows
        self.converge(p, r)
        self.assert_no_snapshot(r)
        self.assertEqual(sqlite3_cli(r.db, "SELECT seq FROM sqlite_sequence "
                                     "WHERE name = 'audit'").strip(),
                         str(seq[0][0]))
        for sql in ("SELECT * FROM child ORDER BY id",
                    "SELECT * FROM u ORDER BY id",
                    "SELECT * FROM nd ORDER BY id",
                    "SELECT count(*) FROM chain",
                    "SELECT rowid FROM fts WHERE fts MATCH 'cats' "
                    "ORDER BY rowid"):
            self.assertEqual(sqlite3_cli(r.db, sql), sqlite3_cli(p.db, sql),
                             sql)
        self.assertEqual(sqlite3_cli(r.db, "SELECT * FROM u ORDER BY id"),
                         "1|b\n2|c\n3|a\n")
        with r.client() as c:
            # the FTS index itself is consistent on the replica
            self.assertEqual(c.q("SELECT count(*) FROM fts WHERE fts "
                                 "MATCH 'dogs'").rows, [(9,)])
        self.assertEqual(integrity(r.db), "ok")
        # FTS5's own check, on a copy (it is written as an INSERT)
        copy = os.path.join(self.dir, "copy.db")
        sqlite3_cli(r.db, f".backup {copy}")
        p2 = subprocess.run(["sqlite3", copy, "INSERT INTO fts(fts) "
                             "VALUES('integrity-check'); INSERT INTO "
                             "plain(plain) VALUES('integrity-check')"],
                            stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p2.returncode, 0, p2.stderr)

    def test_fts5_content_needs_replicated_rowids(self):
        # an fts5 table with external content finds its rows by rowid;
        # replicas keep rowids only where they are the INTEGER PRIMARY
        # KEY (a changed key or a REPLACE gives a row another rowid on a
        # replica), so other content tables are refused
        p, r = self.pair()
        refused = [
            ("CREATE VIRTUAL TABLE f1 USING fts5(body, content='docs')",
             "content table docs has no INTEGER PRIMARY KEY"),
            ("CREATE VIRTUAL TABLE f2\nUSING\tfts5 ( body , content = "
             "\"docs\" , content_rowid = 'oid' )",
             "content table docs has no INTEGER PRIMARY KEY"),
            ("CREATE VIRTUAL TABLE f3 USING fts5(body, content=nothere)",
             "content table nothere is not a table"),
            ("CREATE VIRTUAL TABLE f4 USING fts5(body, content='w')",
             "content table w is WITHOUT ROWID"),
        ]
        with p.client() as c:
            c.q("CREATE TABLE docs(slug TEXT PRIMARY KEY NOT NULL, "
                "body TEXT)")
            c.q("CREATE TABLE w(slug TEXT PRIMARY KEY, body) WITHOUT ROWID")
            lsn = p.lsn()
            self.assert_refused(c, refused)
            self.assertEqual(p.lsn(), lsn)
            self.assertEqual(c.q("SELECT count(*) FROM sqlite_schema WHERE "
                                 "name LIKE 'f_%'").rows, [(0,)])
            # allowed: the rowid is an INTEGER PRIMARY KEY, or
            # content_rowid names a column (replicated like the others)
            c.q("CREATE TABLE d1(id INTEGER PRIMARY KEY, body TEXT)")
            c.q("CREATE VIRTUAL TABLE f5 USING fts5(body, content='d1')")
            c.q("CREATE TABLE d2(slug TEXT PRIMARY KEY NOT NULL, "
                "n INTEGER UNIQUE NOT NULL, body TEXT)")
            c.q("CREATE VIRTUAL TABLE f6 USING fts5(body, content='d2', "
                "content_rowid='n')")
            c.q("CREATE VIRTUAL TABLE f7 USING fts5(body, content='')")
            # the content table made again without its rowid: refused
            with self.assertRaises(DbrepError) as e:
                c.query([("DROP TABLE d1", ()),
                         ("CREATE TABLE d1(slug TEXT PRIMARY KEY NOT NULL, "
                          "body TEXT)", ())])
            self.assertIn("fts5 table f5: its content table d1 has no "
                          "INTEGER PRIMARY KEY", e.exception.msg)
            self.assertEqual(c.q("SELECT type FROM pragma_table_info('d1') "
                                 "WHERE pk").rows, [("INTEGER",)])
            # end to end through a changed key and a REPLACE
            c.q("CREATE TRIGGER d2_ai AFTER INSERT ON d2 BEGIN INSERT INTO "
                "f6(rowid, body) VALUES(new.n, new.body); END")
            c.q("CREATE TRIGGER d2_ad AFTER DELETE ON d2 BEGIN INSERT INTO "
                "f6(f6, rowid, body) VALUES('delete', old.n, old.body); END")
            c.q("CREATE TRIGGER d2_au AFTER UPDATE ON d2 BEGIN INSERT INTO "
                "f6(f6, rowid, body) VALUES('delete', old.n, old.body); "
                "INSERT INTO f6(rowid, body) VALUES(new.n, new.body); END")
            c.q("INSERT INTO d2 VALUES('a', 1, 'about cats'), "
                "('b', 2, 'about dogs')")
            c.q("UPDATE d2 SET slug = 'c' WHERE slug = 'a'")
            c.q("INSERT OR REPLACE INTO d2 VALUES('b', 3, 'about birds')")
        self.converge(p, r)
        q = ("SELECT d.slug FROM f6 JOIN d2 AS d ON d.n = f6.rowid WHERE "
             "f6 MATCH 'cats OR birds OR dogs' ORDER BY 1")
        self.assertEqual(sqlite3_cli(p.db, q), "b\nc\n")
        with r.client() as c:
            self.assertEqual(c.q(q).rows, [("b",), ("c",)])
        # a database given such a table elsewhere: refused at start
        n = self.node("db3")
        subprocess.run(["sqlite3", n.db, "CREATE TABLE docs(slug TEXT "
                        "PRIMARY KEY NOT NULL, body); CREATE VIRTUAL TABLE "
                        "f USING fts5(body, content=docs)"], check=True,
                       timeout=30)
        with self.assertRaises(AssertionError) as e:
            n.start()
        self.assertIn("fts5 table f: its content table docs has no INTEGER "
                      "PRIMARY KEY", str(e.exception))

    def test_far_behind_snapshot_under_load(self):
        p, r = self.pair(pextra="log-min-records 20\nlog-max-records 100")
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
            c.q("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)")
            c.q("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                "FROM s WHERE i < 2000) INSERT INTO big SELECT i, "
                "randomblob(2000) FROM s")
        self.converge(p, r)
        r.kill9()
        writer_storm(p.sock, 400, 0)
        wait_for(lambda: int(p.status()["log"].split()[1]) > 300, 10,
                 what="the primary to prune its log")
        stop = threading.Event()
        th = threading.Thread(target=writer_storm, args=(p.sock, 100000,
                              10000), kwargs={"stop": stop})
        th.start()
        r.start()
        wait_for(lambda: r.status()["snapshots_installed"] != "0", 20,
                 what="a snapshot on the replica")
        time.sleep(0.5)
        stop.set()
        th.join()
        self.converge(p, r)
        self.syslog.wait(r"db2.*snapshot installed|snapshot installed")
        self.assertEqual(integrity(r.db), "ok")
        wait_for(lambda: p.lsn() - int(p.status()["log"].split()[1]) + 1
                 <= 100, 5, what="the log to shrink to log-max-records")

    def slow_snapshot(self):
        """A replica (replication-timeout 300ms) restarted after its place
        in the primary's log is gone, so that it needs a 10 MB snapshot,
        which a fault proxy lets through at 2 MB/s.  (p, r, to_p)."""
        p, r, to_p, _ = self.cut_pair(
            pextra="log-min-records 20\nlog-max-records 100",
            heartbeat="100ms", timeout="300ms")
        with p.client() as c:
            c.q("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)")
        self.converge(p, r)
        gone = r.lsn()
        r.kill9()
        with p.client() as c:
            for i in range(5):
                c.q("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT "
                    "i + 1 FROM s WHERE i < 250) INSERT INTO big(b) "
                    "SELECT randomblob(4000) FROM s")
        writer_storm(p.sock, 150, 0)
        wait_for(lambda: int(p.status()["log"].split()[1]) > gone + 1, 10,
                 what="the primary to prune its log")
        to_p.set("throttle", bps=2000000)
        self.syslog.mark()
        r.start()
        return p, r, to_p

    def test_snapshot_longer_than_the_replication_timeout(self):
        """A replica says nothing while its snapshot is made, sent and
        installed.  Here the snapshot crawls at 2 MB/s through a fault
        proxy, past 6 replication timeouts after its end is queued (4 MB
        of it wait in the primary's buffer then), and is installed after:
        the replica is not cut off, nor sent a new snapshot, and no
        partial copy is left on the primary's disk."""
        p, r, to_p = self.slow_snapshot()
        wait_for(lambda: r.status()["snapshots_installed"] != "0", 90,
                 what="a snapshot on the replica")
        to_p.set("pass")
        self.converge(p, r)
        # each node's own lines: the syslog is shared with the modules
        # running beside, whose nodes have the same names
        pl = self.syslog.lines()
        mine = [ln for ln in pl
                if any(f"dbrepd[{c}]: " in ln for c in children(p.d.pid))]
        theirs = [ln for ln in pl
                  if any(f"dbrepd[{c}]: " in ln for c in children(r.d.pid))]
        sent = [ln for ln in mine
                if re.search(r"replica db2: snapshot at LSN \d+ sent", ln)]
        self.assertEqual(len(sent), 1, sent)
        self.assertGreater(int(re.search(r"\((\d+) bytes\)",
                                         sent[0]).group(1)), 8 * 1000000)
        self.assertEqual([ln for ln in mine
                          if "replica db2" in ln and "timed out" in ln], [])
        self.assertEqual([ln for ln in theirs
                          if "replication link" in ln and "timed out" in ln],
                         [])
        left = [f for f in os.listdir(os.path.dirname(p.db))
                if ".snap-" in f]
        self.assertEqual(left, [])

    def test_replica_stopped_during_its_snapshot_is_cut_off(self):
        """The other side of the test above: a replica that stops (here
        SIGSTOP: its kernel still takes bytes, then holds a full window)
        while it receives a snapshot stops saying so, and the primary
        closes its link within a few timeouts; once it runs again it
        gets a snapshot and catches up."""
        p, r, to_p = self.slow_snapshot()
        # each node's own lines (the syslog is shared with the modules
        # running beside, whose nodes have the same names); the replica
        # may still be forking its children (its replication process
        # came after a first look at them, under ASan)
        self.syslog.wait(r"dbrepd\[\d+\]: .*receiving a snapshot", 20,
                         tree=r.d.pid)
        t0 = time.monotonic()
        for c in children(r.d.pid) + [r.d.pid]:
            os.kill(c, signal.SIGSTOP)
        try:
            self.syslog.wait(r"dbrepd\[\d+\]: .*replica db2 "
                             r"\([^)]*\): timed out", 20, tree=p.d.pid)
            took = time.monotonic() - t0
        finally:
            for c in children(r.d.pid) + [r.d.pid]:
                os.kill(c, signal.SIGCONT)
        # 300 ms, and 6 x 300 ms + 1 ms per 16 KiB once it has all
        print(f"stopped replica cut off after {took:.1f} s")
        self.assertLess(took, 12)
        to_p.set("pass")
        wait_for(lambda: r.status()["snapshots_installed"] != "0", 60,
                 what="a snapshot on the replica")
        self.converge(p, r)

    def test_min_lsn_read_of_a_table_not_received_yet(self):
        """Read-your-writes right after a CREATE TABLE: a read with the
        write's LSN waits on a replica that has not received the table,
        instead of failing with "no such table"."""
        p, r = self.pair()
        self.converge(p, r)
        repl = [c for c in children(r.d.pid)
                if "replication" in cmdline_of(c)][0]
        got = {}

        def read(lsn, ms):
            try:
                with r.client() as c:
                    got["rows"] = c.q("SELECT v FROM late", min_lsn=lsn,
                                      wait_ms=ms).rows
            except DbrepError as e:
                got["error"] = e

        os.kill(repl, signal.SIGSTOP)
        try:
            with p.client() as c:
                c.q("CREATE TABLE late(id INTEGER PRIMARY KEY, v TEXT)")
                lsn = c.q("INSERT INTO late VALUES(1, 'x')").lsn
            th = threading.Thread(target=read, args=(lsn, 10000))
            th.start()
            time.sleep(0.4)
            self.assertTrue(th.is_alive(), got)     # it waits
        finally:
            os.kill(repl, signal.SIGCONT)
        th.join(15)
        self.assertEqual(got, {"rows": [("x",)]})
        # not received within the wait: the LSN wait's error
        os.kill(repl, signal.SIGSTOP)
        try:
            with p.client() as c:
                c.q("DROP TABLE late")
                c.q("CREATE TABLE late(id INTEGER PRIMARY KEY, w TEXT)")
                lsn = c.q("INSERT INTO late VALUES(1, 'y')").lsn
            got.clear()
            with r.client() as c:
                with self.assertRaises(DbrepError) as e:
                    c.q("SELECT w FROM late", min_lsn=lsn, wait_ms=300)
            self.assertEqual(e.exception.code, DBREP_ELSNWAIT)
        finally:
            os.kill(repl, signal.SIGCONT)
        self.converge(p, r)

    def test_slowest_replica_holds_the_log(self):
        p, r = self.pair(pextra="log-min-records 10\nlog-max-records 5000",
                         timeout="30s")
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, r)
        acked = p.lsn()
        repl = [c for c in children(r.d.pid)
                if "replication" in cmdline_of(c)][0]
        os.kill(repl, signal.SIGSTOP)
        try:
            writer_storm(p.sock, 300, 0)
            time.sleep(1.5)     # the primary prunes every second
            first = int(p.status()["log"].split()[1])
            self.assertLessEqual(first, acked + 1)
        finally:
            os.kill(repl, signal.SIGCONT)
        self.converge(p, r)
        self.assertEqual(r.status()["snapshots_installed"], "0")
        # with the replica caught up the log shrinks to log-min-records
        wait_for(lambda: p.lsn() - int(p.status()["log"].split()[1]) < 20,
                 5, what="the log to be pruned")

    def test_replica_restarts_where_it_stopped(self):
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        writer_storm(p.sock, 100, 0)
        self.converge(p, r)
        r.kill9()
        writer_storm(p.sock, 100, 100)
        r.start()
        self.converge(p, r)
        self.assertEqual(r.status()["snapshots_installed"], "0")
        with self.assertRaises(DbrepError):
            with r.client() as c:
                c.q("INSERT INTO w VALUES(-1, 'x')")

    def test_reload_under_load(self):
        """SIGHUP on both nodes while writes flow: new processes take
        over, nothing is lost, nothing diverges."""
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        acked = []
        stop = threading.Event()
        th = threading.Thread(target=writer_storm, args=(p.sock, 100000, 0),
                              kwargs={"acked": acked, "stop": stop})
        th.start()
        try:
            for node in (p, r, p):
                time.sleep(0.4)
                node.d.signal(signal.SIGHUP)
                self.syslog.wait(r"reload done: configuration generation",
                                 tree=node.d.pid)
                self.syslog.mark()
        finally:
            stop.set()
            th.join()
        self.converge(p, r)
        self.assert_no_snapshot(r)
        with r.client() as c:
            have = {x[0] for x in c.q("SELECT id FROM w").rows}
        self.assertEqual(set(acked) - have, set())
