"""dbrepd group commit (dbrepd.conf(5) group-commit): a commit is answered
only after the write-ahead log holding it was flushed to the disk, seen
in the worker's own system calls with strace; concurrent writers share
flushes, every one of their commits is answered, counted and shipped;
with group-commit no, SQLite flushes each commit itself."""
import os
import re
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    DbrepTest, children, cmdline_of, sqlite3_cli, wait_for, writer_storm)

SYSCALL = re.compile(r"^(\d+)\s+(\w+)\((\d+)<([^>]*)>")


def worker_pid(node):
    return [c for c in children(node.d.pid)
            if "worker" in cmdline_of(c)][0]


class Durable(DbrepTest):
    def trace(self, node, work):
        """The worker's writes, flushes and sends while work() runs, as
        (call, path) in order."""
        out = os.path.join(self.dir, "strace.out")
        st = subprocess.Popen(
            ["strace", "-qq", "-y", "-e",
             "trace=pwrite64,fdatasync,fsync,write,sendto,sendmsg",
             "-o", out, "-p", str(worker_pid(node))],
            stderr=subprocess.PIPE)
        # strace is attached once the worker is seen traced
        wait_for(lambda: any(ln.startswith("TracerPid:") and
                             ln.split()[1] != "0"
                             for ln in open(f"/proc/{worker_pid(node)}/"
                                            "status")), 10, what="strace")
        try:
            work()
        finally:
            st.send_signal(signal.SIGINT)
            st.wait(10)
        calls = []
        with open(out) as f:
            for ln in f:
                m = SYSCALL.match("0 " + ln)
                if m:
                    calls.append((m.group(2), m.group(4)))
        return calls

    def traced_inserts(self, n, extra=""):
        """A one-worker primary, n inserts on one connection under
        strace: (node, the worker's calls)."""
        p = self.node("db1", workers=1, extra=extra).start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")

        def work():
            with p.client() as c:
                for i in range(n):
                    c.q("INSERT INTO t VALUES(?, 'x')", i)

        return p, self.trace(p, work)

    def test_answer_only_after_the_flush(self):
        p, calls = self.traced_inserts(20)
        wal = p.db + "-wal"
        dirty = answers = 0
        for call, path in calls:
            if call == "pwrite64" and path == wal:
                dirty = 1
            elif call in ("fdatasync", "fsync") and path == wal:
                dirty = 0
            elif call in ("write", "sendto", "sendmsg") and \
                    path.startswith("socket:"):
                self.assertEqual(dirty, 0, "a commit answered before its "
                                 "log was flushed:\n" + "\n".join(
                                     f"{a} {b}" for a, b in calls))
                answers += 1
        self.assertEqual(answers, 21, calls)     # the greeting, 20 commits
        self.assertGreaterEqual(sum(1 for c, path in calls
                                    if c == "fdatasync" and path == wal), 20)
        # the flushes are group commit's, not SQLite's own
        self.assertGreaterEqual(p.metrics()["dbrepd_log_flushes_total"], 20)

    def test_concurrent_writers_share_flushes(self):
        p, r = self.pair()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        before = p.metrics()
        acked, errors = [], []
        threads = [threading.Thread(target=writer_storm,
                                    args=(p.sock, 60, k * 1000, acked,
                                          errors))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(acked), 480)
        self.assertEqual(sqlite3_cli(p.db, "SELECT count(*) FROM w").strip(),
                         "480")
        m = p.metrics()
        commits = m["dbrepd_commits_total"] - before["dbrepd_commits_total"]
        flushes = m["dbrepd_log_flushes_total"] - \
            before["dbrepd_log_flushes_total"]
        self.assertEqual(commits, 480)
        self.assertGreater(flushes, 0)
        self.assertLess(flushes, commits * 0.8,
                        "8 concurrent writers should share flushes")
        # shipped once flushed: the replica gets every one of them
        self.converge(p, r)

    def test_group_commit_off(self):
        p, calls = self.traced_inserts(10, "group-commit no")
        wal = p.db + "-wal"
        # SQLite flushes inside each commit, dbrepd adds none
        self.assertGreaterEqual(sum(1 for c, path in calls
                                    if c == "fdatasync" and path == wal), 10)
        self.assertEqual(p.metrics()["dbrepd_log_flushes_total"], 0)

    def test_no_flush_with_synchronous_normal(self):
        p = self.node("db1", workers=1, extra="synchronous normal").start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            for i in range(10):
                c.q("INSERT INTO t VALUES(?, 'x')", i)
        self.assertEqual(p.metrics()["dbrepd_log_flushes_total"], 0)
        self.assertEqual(p.lsn(), 12)
