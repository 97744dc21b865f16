"""dbrepd, one node and a pair: the conf, the client protocol, the
primary's write path, what it refuses, read-only replicas, minimum-LSN
reads, authentication, hostile frames, dbrepctl and /metrics."""
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import busy_poll_check, children, wait_value  # noqa: E402
from dbreptest import (
    BIN, SECRET, Client, DbrepError, DbrepTest, digest, integrity,
    sqlite3_cli, wait_for, frame, pstr, QUERY, ERROR, SQLITE_CONSTRAINT,
    SQLITE_READONLY, DBREP_EAUTH, DBREP_ELSNWAIT, DBREP_ETOOBIG)


def ctl(*args, nodes=None, secret=SECRET, check=True):
    cmd = [os.path.join(BIN, "dbrepctl")]
    if nodes:
        cmd += ["-n", nodes]
    if secret:
        cmd += ["-s", secret]
    p = subprocess.run(cmd + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"dbrepctl {args}: {p.stderr.decode()}")
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Basic(DbrepTest):
    def test_configtest(self):
        n = self.node("db1")
        rc, out = n.d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"))
        n.d.write_conf("data /x.db\nrole replica\nlisten 127.0.0.1:1\n"
                       "durability quorum\n")
        rc, out = n.d.run("-n")
        self.assertEqual(rc, 1)
        self.assertIn("a replica needs \"primary\"", out)
        self.assertIn("need a shared secret", out)
        self.assertIn("durability quorum needs the number", out)

    def test_types_and_results(self):
        p = self.node("db1").start()
        with p.client() as c:
            r = c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, i INT, r REAL, "
                    "s TEXT, b BLOB, n)")
            self.assertEqual(r.lsn, 2)      # LSN 1 is epoch 1
            r = c.q("INSERT INTO t(i, r, s, b, n) VALUES(?, ?, ?, ?, ?)",
                    -(2 ** 63), 1.5, "h\u00e9llo\0x", b"\0\1\2", None)
            self.assertEqual((r.lsn, r.changes, r.rowid), (3, 1, 1))
            r = c.query([("INSERT INTO t(i) VALUES(?)", (7,)),
                         ("INSERT INTO t(i) VALUES(?); "
                          "INSERT INTO t(i) VALUES(?)", (8, 9)),
                         ("SELECT id, i FROM t WHERE i > ? ORDER BY id",
                          (0,)),
                         ("SELECT count(*) AS n FROM t", ())])
            self.assertEqual(r.lsn, 4)      # one request, one record
            self.assertEqual(r.changes, 3)
            self.assertEqual(len(r.sets), 2)
            self.assertEqual(r.sets[0], (["id", "i"],
                                         [(2, 7), (3, 8), (4, 9)]))
            self.assertEqual(r.sets[1], (["n"], [(4,)]))
            r = c.q("SELECT i, r, s, b, n FROM t WHERE id = 1")
            self.assertEqual(r.rows, [(-(2 ** 63), 1.5, "h\u00e9llo\0x",
                                       b"\0\1\2", None)])
            self.assertEqual(r.lsn, 4)      # the state the read saw
            # a write that changes nothing makes no record
            r = c.q("UPDATE t SET i = 0 WHERE id = 999")
            self.assertEqual((r.lsn, r.changes), (4, 0))

    def test_request_is_atomic(self):
        p = self.node("db1").start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
            c.q("INSERT INTO t VALUES(1, 'a')")
            lsn = p.lsn()
            with self.assertRaises(DbrepError) as e:
                c.query([("INSERT INTO t VALUES(2, 'b')", ()),
                         ("CREATE TABLE u(id INTEGER PRIMARY KEY)", ()),
                         ("INSERT INTO t VALUES(3, 'a')", ())])
            self.assertEqual(e.exception.code, SQLITE_CONSTRAINT)
            self.assertIn("UNIQUE", e.exception.msg)
            self.assertEqual(c.q("SELECT count(*) FROM t").rows, [(1,)])
            self.assertEqual(c.q("SELECT count(*) FROM sqlite_schema "
                                 "WHERE name = 'u'").rows, [(0,)])
            self.assertEqual(p.lsn(), lsn)
            # parameters must match
            with self.assertRaises(DbrepError):
                c.q("INSERT INTO t VALUES(?, ?)", 5)
            with self.assertRaises(DbrepError):
                c.q("INSERT INTO t VALUES(?, ?)", 5, "x", 6)
        self.assertEqual(integrity(p.db), "ok")

    def test_refused_statements(self):
        p = self.node("db1", extra="max-txn-size 64k").start()
        cases = [
            ("CREATE TABLE a(x, y)", "no PRIMARY KEY"),
            ("CREATE TABLE a(x TEXT PRIMARY KEY, y)", "may be NULL"),
            ("CREATE TABLE a AS SELECT 1 AS x", "AS SELECT"),
            ("CREATE TEMP TABLE a(x INTEGER PRIMARY KEY)", "temporary"),
            ("BEGIN", "one transaction"),
            ("ATTACH ':memory:' AS m", "ATTACH"),
            ("DELETE FROM _dbrep_log", "read-only"),
            ("DROP TABLE _dbrep_meta", "its own"),
            ("PRAGMA journal_mode = DELETE", "not allowed"),
            ("CREATE VIRTUAL TABLE v USING fts4(x)", "fts4"),
        ]
        with p.client() as c:
            self.assert_refused(c, cases)
            # allowed: WITHOUT ROWID, NOT NULL keys, fts5, user_version
            c.q("CREATE TABLE k(a TEXT NOT NULL, b INT NOT NULL, "
                "PRIMARY KEY(a, b))")
            c.q("CREATE TABLE w(a TEXT PRIMARY KEY, b) WITHOUT ROWID")
            c.q("CREATE VIRTUAL TABLE f USING fts5(body)")
            c.q("PRAGMA user_version = 7")
            c.q("PRAGMA table_info(k)")
            # a transaction over max-txn-size, refused before commit
            c.q("CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
            lsn = p.lsn()
            with self.assertRaises(DbrepError) as e:
                c.q("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT "
                    "i + 1 FROM s WHERE i < 200) INSERT INTO big SELECT i, "
                    "zeroblob(1000) FROM s")
            self.assertEqual(e.exception.code, DBREP_ETOOBIG)
            self.assertIn("max-txn-size", e.exception.msg)
            self.assertEqual(c.q("SELECT count(*) FROM big").rows, [(0,)])
            self.assertEqual(p.lsn(), lsn)

    def test_replica_readonly_and_min_lsn(self):
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            w = c.q("INSERT INTO t(v) VALUES('x')")
        r.wait_lsn(w.lsn)
        with r.client() as c:
            with self.assertRaises(DbrepError) as e:
                c.q("INSERT INTO t(v) VALUES('y')")
            self.assertEqual(e.exception.code, SQLITE_READONLY)
            self.assertEqual(e.exception.primary, p.client_addr)
            self.assertIn(p.client_addr, e.exception.msg)
            with self.assertRaises(DbrepError) as e:
                c.q("CREATE TABLE z(id INTEGER PRIMARY KEY)")
            self.assertEqual(e.exception.code, SQLITE_READONLY)
            # a read that needs a later LSN than exists: bounded wait
            t0 = time.time()
            with self.assertRaises(DbrepError) as e:
                c.q("SELECT count(*) FROM t", min_lsn=w.lsn + 5,
                    wait_ms=300)
            self.assertEqual(e.exception.code, DBREP_ELSNWAIT)
            self.assertGreaterEqual(time.time() - t0, 0.25)
            # ... and it returns as soon as the write is applied
            done = {}

            def late():
                time.sleep(0.3)
                with p.client() as cp:
                    done["lsn"] = cp.q("INSERT INTO t(v) VALUES('z')").lsn

            th = threading.Thread(target=late)
            th.start()
            res = c.q("SELECT count(*) FROM t", min_lsn=w.lsn + 1,
                      wait_ms=5000)
            th.join()
            self.assertEqual(res.rows, [(2,)])
            self.assertGreaterEqual(res.lsn, done["lsn"])
            # read-your-writes through the library: write, then read the
            # replica with the commit's LSN
        rc, out, err = ctl("query", "INSERT INTO t(v) VALUES('ctl')",
                           nodes=f"primary=unix:{p.sock} "
                           f"replica=unix:{r.sock}")
        lsn = int(out.split("lsn ")[1].split(",")[0])
        rc, out, err = ctl("query", "-r", "-m", str(lsn), "-c",
                           "SELECT v FROM t ORDER BY id DESC LIMIT 1",
                           nodes=f"primary=unix:{p.sock} "
                           f"replica=unix:{r.sock}")
        self.assertEqual(out.splitlines(), ["v", "ctl"])
        # a write sent to the replica by the library goes to the primary
        rc, out, err = ctl("query", "INSERT INTO t(v) VALUES('redirected')",
                           nodes=f"unix:{r.sock}")
        self.assertIn("node db1", out)

    def test_authentication(self):
        p = self.node("db1").start()
        with self.assertRaises(DbrepError) as e:
            Client(("127.0.0.1", p.port), secret="wrong")
        self.assertEqual(e.exception.code, DBREP_EAUTH)
        self.syslog.wait(r"dbrepd\[\d+\]: worker \d: .*authentication "
                         r"failed")
        # nothing before AUTH
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        c = Client.__new__(Client)
        c.s, c.buf = s, b""
        c.recv()
        s.sendall(frame(QUERY, b"\0" * 20))
        t, pl = c.recv()
        self.assertEqual(t, ERROR)
        s.close()
        # nor room for a big frame: refused at its header, not buffered
        # up to max-request-size (16 MB a connection, unauthenticated)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        c = Client.__new__(Client)
        c.s, c.buf = s, b""
        c.recv()
        s.sendall(struct.pack(">IB", 1 << 20, 10) + b"x" * 100)
        t, pl = c.recv()
        self.assertEqual(t, ERROR)
        self.assertIn(b"authenticate first", pl)
        s.close()
        with Client(("127.0.0.1", p.port)) as c:
            self.assertEqual(c.q("SELECT 1").rows, [(1,)])
        rc, out, err = ctl("query", "SELECT 1", nodes=p.client_addr,
                           secret=None, check=False)
        self.assertEqual(rc, 1)
        self.assertIn("needs the shared secret", err)

    def test_hostile_frames(self):
        p = self.node("db1", extra="max-request-size 4k").start()
        bad = [
            struct.pack(">IB", 0, 10),                   # length 0
            struct.pack(">IB", 1 << 31, 10),             # huge
            struct.pack(">IB", 10000, 10) + b"x" * 100,  # over the limit
            frame(99, b""),                              # unknown type
            frame(QUERY, b"\0\0"),                       # short query
            frame(QUERY, struct.pack(">IQII", 0, 0, 0, 1) +
                  pstr("SELECT ?") + struct.pack(">I", 1) + b"\7"),
            frame(QUERY, struct.pack(">IQII", 0, 0, 0, 1) + b"\0\0\0\xff"),
            frame(QUERY, struct.pack(">IQII", 0, 0, 0, 0)),
        ]
        for b in bad:
            with p.client() as c:
                c.s.sendall(b)
                try:
                    t, pl = c.recv()
                    self.assertEqual(t, ERROR, b)
                except (ConnectionError, OSError):
                    pass
        # split in bytes: a frame sent one byte at a time still works
        with p.client() as c:
            f = c.query_frame("SELECT 42")
            for i in range(len(f)):
                c.s.sendall(f[i:i + 1])
                time.sleep(0.001)
            self.assertEqual(c.recv()[0], 11)
        with p.client() as c:
            self.assertEqual(c.q("SELECT 2").rows, [(2,)])
        self.assertEqual(len(p.d.workers()), 2)

    def test_clients_shared_by_workers(self):
        # appd's workers open their connections in a burst at start; the
        # kernel would give nearly all of them to one worker (19 of 20
        # seen), and that worker would serve every read of the site
        n = self.node("db1", workers=2).start()
        workers = n.d.wait_workers(2)
        clients = [n.client() for _ in range(20)]
        try:
            for i, c in enumerate(clients):
                self.assertEqual(c.q("SELECT ?", i).rows, [(i,)])
            out = subprocess.run(["ss", "-xpH"], stdout=subprocess.PIPE,
                                 check=True).stdout.decode()
        finally:
            for c in clients:
                c.close()
        held = {}
        for ln in out.splitlines():
            f = ln.split()
            if len(f) > 4 and f[1] == "ESTAB" and f[4] == n.sock:
                for pid in re.findall(r"pid=(\d+)", ln):
                    held[int(pid)] = held.get(int(pid), 0) + 1
        print("20 clients over 2 dbrepd workers:", held)
        self.assertEqual(set(held), set(workers), out)
        self.assertEqual(sum(held.values()), 20, out)
        self.assertGreaterEqual(min(held.values()), 7, held)

    def test_busy_poll(self):
        # the replication process must not spin, only the worker
        def start(extra):
            n = self.node("bp" + str(len(extra)), workers=1,
                          extra=extra).start()
            (w,) = n.d.wait_workers(1)
            c = n.client()

            def request():
                self.assertEqual(c.q("SELECT ?", 7).rows, [(7,)])

            def stop():
                c.close()
                n.stop()
            return w, [p for p in children(n.d.pid) if p != w], request, \
                stop
        busy_poll_check(self, start)

    def test_dbrepctl_and_snapshot_and_metrics(self):
        p, r = self.pair()
        nodes = f"unix:{p.sock}"
        ctl("query", "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, "
            "b BLOB)", nodes=nodes)
        rc, out, err = ctl("query", "INSERT INTO t VALUES(?, ?, ?)", "i:1",
                           "t:a,b \"c\"", "x:00ff", nodes=nodes)
        self.assertIn("changes 1", out)
        rc, out, err = ctl("query", "-c", "SELECT * FROM t", nodes=nodes)
        self.assertEqual(out, "id,s,b\n1,\"a,b \"\"c\"\"\",x'00ff'\n")
        rc, out, err = ctl("query", "SELECT * FROM t", nodes=nodes)
        self.assertIn("id | s", out)
        # the replica connects on its own time (slow under sanitizers)
        out = wait_value(lambda: ctl("status", nodes=nodes)[1],
                         lambda o: re.search(r"replica db2 addr \S+ "
                                             "connected ", o), 10,
                         what="db2 connected")
        self.assertIn("role primary", out)
        lsn = p.lsn()
        r.wait_lsn(lsn)
        # the replica's link may come up after the inserts on a busy box
        wait_for(lambda: re.search(r"replica db2 addr \S+ connected yes",
                                   ctl("status", nodes=nodes)[1]), 5,
                 what="db2 connected in the primary's status")
        rc, out, err = ctl("status", nodes=f"unix:{r.sock}")
        self.assertIn("role replica", out)
        self.assertIn(f"primary db1 replication {p.repl}", out)
        snap = os.path.join(self.dir, "snap.db")
        rc, out, err = ctl("snapshot", snap, nodes=nodes)
        self.assertIn(f"LSN {lsn}", out)
        self.assertEqual(integrity(snap), "ok")
        self.assertEqual(digest(snap), digest(p.db))
        self.assertEqual(sqlite3_cli(snap, "SELECT max(lsn) FROM _dbrep_log")
                         .strip(), str(lsn))
        # the replication process sets the LSN gauge when the workers'
        # bell wakes it, which may be just after the commit was answered
        mp = wait_value(p.metrics, lambda m: m["dbrepd_lsn"] == lsn, 5,
                        what="the LSN gauge")
        self.assertGreaterEqual(mp["dbrepd_commits_total"], 2)
        self.assertEqual(mp["dbrepd_primary"], 1)
        self.assertEqual(mp["dbrepd_lsn"], lsn)
        self.assertIn('dbrepd_replica_lag_records{replica="db2"}', mp)
        self.assertGreaterEqual(mp["dbrepd_snapshots_sent_total"], 1)
        mr = wait_value(r.metrics, lambda m: m.get(
            "dbrepd_replication_connected") == 1 and m.get(
            "dbrepd_lsn") == lsn and m.get(
            "dbrepd_replication_lag_records") == 0, 5,
            what="replica metrics")
        self.assertGreaterEqual(mr["dbrepd_applied_records_total"], 2)
        self.assertEqual(mr["dbrepd_replication_lag_records"], 0)
