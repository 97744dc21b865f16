"""dbrepd automatic failover ("failover auto after D"): a replica that
hears nothing from its semi-synchronous primary for D promotes itself
once enough peers agree, and never leaves two primaries that both
acknowledge writes.

kill -9 of the primary in a write storm (two and three nodes): a replica
promotes itself within D and a little, every acknowledged write is
there, the time from the kill to a writable new primary is printed, and
the C client (dbrepctl drill, one handle for the whole run) finds the
new primary without a restart.  A primary cut off by a faulty link, or
stopped, while it keeps being asked to write: none of its writes is
acknowledged; once it hears of the new epoch (from a client, or when the
link heals) it stops taking writes, keeps its extra records aside and
resynchronizes.  A primary that answers vetoes the election; a replica
that still hears the primary refuses its vote."""
import glob
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    BIN, SECRET, SLOW, DbrepError, DbrepTest, Client, QUERY, QUERY_EPOCH,
    SQLITE_READONLY, DBREP_EINDETERMINATE, children, pstr, wait_for,
    writer_storm)
from faultproxy import FaultProxy  # noqa: E402


def auto(after="1s", quorum=1, timeout="1s", alone=False):
    return (f"durability quorum {quorum} timeout {timeout} on-timeout "
            f"fail\nfailover auto after {after}" +
            (" alone\n" if alone else "\n"))


def ids(node, table="w"):
    with node.client() as c:
        return {r[0] for r in c.q(f"SELECT id FROM {table}").rows}


def processes(node):
    return [node.d.pid] + children(node.d.pid)


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Auto(DbrepTest):
    def cluster(self, names, after="1s", peers=None, primary=None,
                alone=False):
        """Nodes with failover auto, the first the primary, every node a
        peer of every other (or <peers>[name]: its list)."""
        nodes = [self.node(n, role="primary" if i == 0 else "replica",
                           extra=auto(after, alone=alone))
                 for i, n in enumerate(names)]
        for i, n in enumerate(nodes):
            n.peers = [o.repl for o in nodes if o is not n] \
                if peers is None or n.name not in peers else peers[n.name]
            if i > 0:
                n.primary = (primary or {}).get(n.name, nodes[0].repl)
            n.rewrite()
        return nodes

    def drill(self, nodes, seconds, interval=10):
        """dbrepctl drill on every node of <nodes> (any=, TCP), one
        handle for the whole run."""
        addrs = " ".join(f"any={n.client_addr}" for n in nodes)
        p = subprocess.Popen(
            [os.path.join(BIN, "dbrepctl"), "-n", addrs, "-s", SECRET,
             "-t", "5000", "drill", "-d", str(seconds), "-i",
             str(interval), "drill"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p

    def drill_result(self, p, timeout=60):
        out, _ = p.communicate(timeout=timeout * SLOW)
        lost = re.search(r"acknowledged writes lost: (\d+)", out)
        self.assertIsNotNone(lost, out)
        self.assertEqual(int(lost.group(1)), 0, out)
        self.assertEqual(p.returncode, 0, out)
        gap = re.search(r"longest time without an acknowledged write: "
                        r"([\d.]+) s", out)
        return out, float(gap.group(1)) if gap else 0.0

    def storm(self, node, nthreads=4):
        acked, stop = [], threading.Event()
        threads = [threading.Thread(
            target=writer_storm, args=(node.sock, 1000000, k * 1000000),
            kwargs={"acked": acked, "stop": stop}) for k in range(nthreads)]
        for t in threads:
            t.start()
        return acked, stop, threads

    def ready(self, *replicas):
        """The replicas heard their primary say they count: they may
        take over."""
        for r in replicas:
            wait_for(lambda: r.status().get("takeover") == "yes", 10,
                     what=f"{r.name} to be able to take over")

    def semisync(self, p):
        """failover alone: the primary waits for its replica now."""
        wait_for(lambda: "degraded no" in p.status()["durability"], 10,
                 what=f"{p.name} to wait for the quorum")

    def writable_after(self, node, t0, timeout=15):
        """Seconds from <t0> until <node> takes a write."""
        k = 0
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            k += 1
            try:
                with node.client(timeout=3) as c:
                    c.q("INSERT INTO w(id, v) VALUES(?, 'probe')", -k)
                return time.time() - t0
            except (DbrepError, OSError, ConnectionError):
                time.sleep(0.01)
        self.fail(f"{node.name} not writable after {timeout} s")

    def test_kill9_two_nodes(self):
        """kill -9 of a quorum-1 primary in a write storm: the replica
        promotes itself after the configured silence (2 s), loses no
        acknowledged write; the C client finds it."""
        p, r = self.cluster(["ka1", "ka2"], after="2s", alone=True)
        p.start()
        r.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, r)
        self.semisync(p)
        self.ready(r)
        drill = self.drill([p, r], 7)
        acked, stop, threads = self.storm(p)
        time.sleep(1.5)
        t_kill = time.time()
        p.kill9()
        took = self.writable_after(r, t_kill)
        stop.set()
        for t in threads:
            t.join(10)
        print(f"\nfailover auto after 2s, kill -9 of the primary: "
              f"{r.name} writable {took:.2f} s after the kill "
              f"({len(acked)} writes acknowledged before)", file=sys.stderr)
        self.assertGreater(len(acked), 50)
        self.assertGreaterEqual(took, 1.8)
        self.assertLess(took, 5.0 * SLOW)
        self.syslog.wait(r"primary ka1 silent for \d+ ms: promoting "
                         r"myself, epoch 2 \(1 of 1 votes\)")
        self.syslog.wait(r"node ka2 promoted to primary: epoch 2")
        lost = sorted(set(acked) - ids(r))
        self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} "
                         "acknowledged writes lost")
        out, gap = self.drill_result(drill)
        print(f"dbrepctl drill (any=ka1 any=ka2, one handle): longest "
              f"time without an acknowledged write {gap:.2f} s\n{out}",
              file=sys.stderr)
        self.assertIn("acknowledged by ka2", out)
        self.assertLess(gap, 6.0 * SLOW, out)
        st = r.status()
        self.assertEqual((st["role"], st["epoch"]), ("primary", "2"))
        # the new primary answered alone (failover alone); the old one
        # comes back as a replica of epoch 2 and converges (what it had
        # committed unacknowledged is kept aside); from then on commits
        # wait for it again
        self.assertIn("degraded yes", r.status()["durability"])
        p.start()
        self.assertEqual(p.status()["role"], "replica")
        self.converge(r, p)
        self.semisync(r)
        self.syslog.wait(r"epoch 2: a replica holds every commit")

    def test_kill9_three_nodes(self):
        """Three nodes, quorum 1: two votes are needed.  Both replicas
        at the same LSN when the primary dies (a tie): exactly one
        promotes itself, in one round, the other follows it."""
        p, a, b = self.cluster(["kb1", "kb2", "kb3"], after="1s")
        for n in (p, a, b):
            n.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, a, b)
        acked, stop, threads = self.storm(p)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        self.converge(p, a, b)
        self.ready(a, b)
        t_kill = time.time()
        p.kill9()
        ok = []

        def first_writable():
            for n in (a, b):
                try:
                    with n.client(timeout=3) as c:
                        c.q("INSERT INTO w(id, v) VALUES(-1, 'probe')")
                    ok.append(n)
                    return True
                except (DbrepError, OSError, ConnectionError):
                    pass
            return False
        wait_for(first_writable, 15 * SLOW, step=0.01,
                 what="a writable new primary")
        took = time.time() - t_kill
        w = ok[0]
        other = b if w is a else a
        print(f"\nthree nodes, failover auto after 1s: {w.name} writable "
              f"{took:.2f} s after the kill", file=sys.stderr)
        self.assertLess(took, 5.0 * SLOW)
        self.syslog.wait(r"primary kb1 silent for \d+ ms: promoting "
                         r"myself, epoch 2 \(2 of 2 votes\)")
        self.syslog.wait(rf"voted for {w.name} \(.*\) as the primary of "
                         r"epoch 2")
        rounds = [ln for ln in self.syslog.lines()
                  if re.search(r"not promoting.*epoch|asking .* epoch 3", ln)
                  and "kb" in ln]
        self.assertEqual(rounds, [], "more than one round")
        self.assertEqual(sorted(set(acked) - ids(w)), [])
        # one primary; the other replicates from it without a repoint
        wait_for(lambda: other.status().get("connected") == "yes", 10,
                 what=f"{other.name} to follow {w.name}")
        st = other.status()
        self.assertEqual((st["role"], st["writable"], st["epoch"]),
                         ("replica", "no", "2"))
        self.assertIn(w.name, st["primary"])
        self.converge(w, other)

    def test_cut_off_primary(self):
        """The link between primary and replica goes dark while clients
        keep writing to the primary: none of its writes is acknowledged;
        the replica promotes itself; a client that saw the new primary
        stops the old one at once; once the link heals the old primary
        keeps its extra records aside and resynchronizes."""
        p, r, to_p, to_r = self.cut_pair(("ca1", "ca2"),
                                         auto("1s", alone=True),
                                         auto("1s", alone=True))
        self.converge(p, r)
        self.semisync(p)
        before = []
        writer_storm(p.sock, 30, 0, acked=before)
        self.assertEqual(len(before), 30)
        self.converge(p, r)
        self.ready(r)
        drill = self.drill([p, r], 8, interval=20)
        time.sleep(0.5)
        fork = r.lsn()
        t_cut = time.time()
        to_p.set("blackhole")
        to_r.set("blackhole")
        # clients keep writing to the old primary
        acked, errors, stop = [], [], threading.Event()
        threads = [threading.Thread(
            target=writer_storm, args=(p.sock, 100, 1000 + k * 100),
            kwargs={"acked": acked, "errors": errors, "stop": stop})
            for k in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: r.status()["role"] == "primary", 10 * SLOW,
                 what="the replica to promote itself")
        took = time.time() - t_cut
        print(f"\nlink cut, failover auto after 1s: {r.name} primary "
              f"{took:.2f} s after the cut", file=sys.stderr)
        self.assertLess(took, 5.0 * SLOW)
        self.syslog.wait(r"primary ca1 silent for \d+ ms: promoting "
                         r"myself, epoch 2")
        time.sleep(1.5)
        # a client that saw epoch 2 tells the old primary: no more writes
        with Client(p.sock) as c:
            stmt = pstr("INSERT INTO w(id, v) VALUES(5000, 'x')") + \
                struct.pack(">I", 0)
            c.send(QUERY, struct.pack(">IQIQI", QUERY_EPOCH, 0, 0, 2, 1) +
                   stmt)
            t, pl = c.recv()
            e = Client.error(pl)
            self.assertEqual(e.code, SQLITE_READONLY, e.msg)
            self.assertIn("no longer takes writes", e.msg)
        self.assertEqual(p.status()["writable"], "no")
        self.syslog.wait(r"a client saw a primary of epoch 2 \(this node "
                         r"is at 1\)")
        stop.set()
        for t in threads:
            t.join(15 * SLOW)
        self.assertEqual(acked, [], "the cut-off primary acknowledged "
                         "writes")
        self.assertGreater(len(errors), 0)
        self.assertTrue(all(e.code in (DBREP_EINDETERMINATE,
                                       SQLITE_READONLY) for e in errors),
                        [e.msg for e in errors])
        doomed = sum(e.code == DBREP_EINDETERMINATE for e in errors)
        # the link heals: the old primary finds the new one, keeps its
        # doomed records aside, resynchronizes
        for fp in (to_p, to_r):
            fp.set("reset")
            fp.set("pass")
        wait_for(lambda: p.status().get("connected") == "yes", 15 * SLOW,
                 what="the old primary to follow the new one")
        self.syslog.wait(r"found the primary of epoch 2 at .*: following "
                         r"it", timeout=10)
        ln = self.syslog.wait(r"diverged: \d+ records after LSN \d+ are "
                              r"not in the primary's history; kept in "
                              + re.escape(p.db), timeout=10)
        self.assertGreaterEqual(int(re.search(r"after LSN (\d+)",
                                              ln).group(1)), fork)
        kept = int(re.search(r"diverged: (\d+) records", ln).group(1))
        self.assertGreaterEqual(kept, doomed, ln)
        side = glob.glob(p.db + "-diverged-*.db")
        self.assertEqual(len(side), 1)
        out, gap = self.drill_result(drill)
        self.assertIn("acknowledged by ca2", out)
        print(f"dbrepctl drill through the cut: longest time without an "
              f"acknowledged write {gap:.2f} s", file=sys.stderr)
        self.converge(r, p)
        have = ids(r)
        self.assertEqual(sorted(set(before) - have), [])
        self.assertEqual([i for i in have if 1000 <= i < 1300], [])

    def test_new_primary_tells_old(self):
        """After a cut, the new primary reaches the old one first (the
        old one cannot reach it): its probe tells it of the new epoch,
        and the old primary stops taking writes at once."""
        p, r, to_p, to_r = self.cut_pair(("ta1", "ta2"),
                                         auto("1s", alone=True),
                                         auto("1s", alone=True))
        self.converge(p, r)
        self.semisync(p)
        self.ready(r)
        to_p.set("blackhole")
        to_r.set("blackhole")
        wait_for(lambda: r.status()["role"] == "primary", 10 * SLOW,
                 what="the replica to promote itself")
        self.assertEqual(p.status()["writable"], "yes")
        to_p.set("reset")
        to_p.set("pass")
        self.syslog.wait(r"peer ta1 \(.*\) is a writable primary of epoch "
                         r"1, before ours \(2\): telling it", timeout=10)
        wait_for(lambda: p.status()["writable"] == "no", 10 * SLOW,
                 what="the old primary to stop taking writes")
        self.syslog.wait(r"node ta1 learnt of epoch 2")
        with p.client() as c:
            with self.assertRaises(DbrepError) as e:
                c.q("INSERT INTO w VALUES(1, 'x')")
            self.assertEqual(e.exception.code, SQLITE_READONLY)
        to_r.set("reset")
        to_r.set("pass")
        wait_for(lambda: p.status().get("connected") == "yes", 15 * SLOW,
                 what="the old primary to follow the new one")
        self.converge(r, p)

    def test_stopped_primary(self):
        """SIGSTOP of the primary while it is asked to write; SIGCONT
        after the replica promoted itself: the queued writes commit there
        but none is acknowledged; it fences itself and resynchronizes."""
        p, r = self.cluster(["sa1", "sa2"], after="1s", alone=True)
        p.start()
        r.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        writer_storm(p.sock, 20, 0)
        self.converge(p, r)
        self.semisync(p)
        self.ready(r)
        pids = processes(p)
        t_stop = time.time()
        signal_all(pids, signal.SIGSTOP)
        self.addCleanup(signal_all, pids, signal.SIGCONT)
        acked, errors = [], []
        th = threading.Thread(target=writer_storm, args=(p.sock, 3, 100),
                              kwargs={"acked": acked, "errors": errors})
        th.start()
        took = self.writable_after(r, t_stop)
        print(f"\nSIGSTOP of the primary, failover auto after 1s: "
              f"{r.name} writable {took:.2f} s after the stop",
              file=sys.stderr)
        self.assertLess(took, 5.0 * SLOW)
        signal_all(pids, signal.SIGCONT)
        th.join(30 * SLOW)
        self.assertEqual(acked, [])
        wait_for(lambda: p.status()["role"] == "replica", 10 * SLOW,
                 what="the stopped primary to fence itself")
        self.syslog.wait(r"node sa1 learnt of epoch 2")
        self.converge(r, p)
        self.assertEqual([i for i in ids(r) if 100 <= i < 103], [])

    def test_async_primary_no_takeover(self):
        """A replica with failover auto whose primary runs async (or
        failover manual) never promotes itself, and says why."""
        p = self.node("na1")
        r = self.node("na2", role="replica", extra=auto("1s"))
        r.primary, r.peers = p.repl, [p.repl]
        p.peers = [r.repl]
        r.rewrite()
        p.rewrite()
        p.start()
        r.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, r)
        self.assertIn("does not run \"failover auto\"",
                      r.status()["takeover"])
        p.kill9()
        self.syslog.wait(r"primary na1 silent for \d+ ms: no automatic "
                         r"failover: its primary does not run \"failover "
                         r"auto\"", timeout=5)
        time.sleep(1.0)
        self.assertEqual(r.status()["role"], "replica")

    def test_live_primary_vetoes(self):
        """The stream is cut but the primary answers at its peer address:
        no election; the replica follows it there."""
        p = self.node("va1", extra=auto("1s"))
        r = self.node("va2", role="replica", extra=auto("1s"))
        to_p = FaultProxy(p.repl).start()
        self.addCleanup(to_p.stop)
        p.peers = [r.repl]
        r.primary, r.peers = to_p.addr, [p.repl]
        p.rewrite()
        r.rewrite()
        p.start()
        r.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, r)
        self.ready(r)
        to_p.set("blackhole")
        self.syslog.wait(r"not promoting: %s is a writable primary of "
                         r"epoch 1" % re.escape(p.repl), timeout=10)
        wait_for(lambda: r.status().get("connected") == "yes", 10,
                 what="the replica to stream from the primary again")
        writer_storm(p.sock, 10, 0)
        self.converge(p, r)
        self.assertEqual(r.status()["role"], "replica")
        self.assertEqual(p.status()["epoch"], "1")

    def test_replica_hearing_primary_refuses(self):
        """Three nodes, quorum 1: a replica cut off from the primary
        asks for votes; the other replica still hears the primary and
        refuses: no promotion, the primary keeps committing."""
        to_p = None
        p, a, b = self.cluster(["ra1", "ra2", "ra3"], after="1s")
        to_p = FaultProxy(p.repl).start()
        self.addCleanup(to_p.stop)
        a.primary = to_p.addr
        a.peers = [to_p.addr, b.repl]
        a.rewrite()
        for n in (p, a, b):
            n.start()
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        self.converge(p, a, b)
        self.ready(a, b)
        to_p.set("blackhole")
        self.syslog.wait(r"pre-vote of ra2 for epoch 2: no: ra3 heard its "
                         r"primary ra1", timeout=10)
        self.syslog.wait(r"not promoting: pre-votes for epoch 2: 1 of 2 "
                         r"needed", timeout=10)
        acked = []
        writer_storm(p.sock, 20, 0, acked=acked)
        self.assertEqual(len(acked), 20)
        self.assertEqual(a.status()["role"], "replica")
        self.assertEqual(p.status()["role"], "primary")
        # (the proxy dropped bytes of the live connection: it must not
        # carry on, as TCP never would)
        to_p.set("reset")
        to_p.set("pass")
        self.converge(p, a, b)


if __name__ == "__main__":
    import unittest
    unittest.main()
