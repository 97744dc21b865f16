"""The database across hosts (tests/e2e/lab.sh; dbrepd in quorum-1 mode,
"durability quorum 1 timeout 2s on-timeout fail"): a client on the
client host posts notes through the service address while

- db1 and db2 are cut from each other at the switch: writes fail (503,
  the commit not confirmed by the replica) and none is acknowledged
  without the replica; once healed, writes go on and the nodes converge;
- the primary's dbrepd is killed, and the runbook (tests/e2e/hosts/
  RUNBOOK.md) is followed at once: dbrepctl promote on the replica, its
  durability made async while it is alone, the old primary started again
  (it comes back as a replica of the new epoch), quorum again.  No
  acknowledged note is lost; the time from the kill to the first
  acknowledged write is printed.  The app servers list both nodes as
  "any=" and find the new primary by themselves;
- with "failover auto after 2s" (a lab of its own, three database
  hosts), the primary's dbrepd is killed and the
  replica promotes itself: the time from the kill to writable (target
  under 5s), no acknowledged note lost, and the old primary, started
  again, takes no write."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for                            # noqa: E402
from lablib import LabTest, Loop                        # noqa: E402



class DbLab(LabTest):
    def status(self, host):
        """dbrepctl status on host (its unix socket), as a dict."""
        rc, out, err = self.lab.exec(host, "dbrepctl", "-t", "3000",
                                     "status")
        if rc != 0:
            return {}
        st = {}
        for ln in out.splitlines():
            k, _, v = ln.partition(" ")
            st.setdefault(k, v)
        return st

    def role(self, host):
        return self.status(host).get("role")

    def notes(self, host):
        """{id: text} of the notes on host's node."""
        rc, out, err = self.lab.exec(host, "dbrepctl", "-t", "5000",
                                     "query", "-c", "-r",
                                     "SELECT id, text FROM notes")
        if rc != 0:
            raise AssertionError(f"notes on {host}: {out}{err}")
        import csv
        import io
        rows = list(csv.reader(io.StringIO(out)))
        return {int(r[0]): r[1] for r in rows[1:] if r}

    def converge(self, a, b, timeout=15):
        t0 = time.time()
        wait_for(lambda: self.notes(a) == self.notes(b), timeout, step=0.2,
                 what=f"{a} and {b} to hold the same notes")
        return time.time() - t0

    def set_durability(self, host, value):
        """The runbook's edit: durability in host's dbrepd.conf, then
        rc.d/dbrepd reload."""
        conf = self.lab.hostdir(host, "conf", "dbrepd.conf")
        with open(conf) as f:
            lines = f.read().splitlines()
        with open(conf, "w") as f:
            for ln in lines:
                f.write(("durability " + value if ln.startswith(
                    "durability ") else ln) + "\n")
        self.lab.rc(host, "dbrepd", "reload")

    def post_loop(self, **kw):
        loop = Loop(self.lab, f"https://{self.lab.name}/api/notes",
                    post=True, timeout=6, name="notes", **kw)
        self.addCleanup(loop.stop)
        return loop

    def acked(self, loop):
        return {r["id"]: r["text"] for r in loop.ok()}

    def first_ack_after(self, loop, t):
        acks = [r["t1"] for r in loop.ok(after=t)]
        return min(acks) if acks else None


class Database(DbLab):
    def test_1_partition_in_quorum_mode(self):
        lab = self.lab
        self.assertEqual((self.role("db1"), self.role("db2")),
                         ("primary", "replica"))
        loop = self.post_loop(rate=10, threads=4)
        loop.wait_more(20)
        lab.partition("db1", "db2")
        # in effect from here: lab.sh takes a moment to start nft, and a
        # write begun before it returned may still be acknowledged
        t_part = time.time()
        self.addCleanup(lab.heal)
        time.sleep(6)
        t_heal = time.time()
        lab.heal()
        wait_for(lambda: self.first_ack_after(loop, t_heal), 15,
                 what="a write acknowledged after the healing")
        t_ok = self.first_ack_after(loop, t_heal)
        loop.wait_more(20)
        loop.stop()
        during = [r for r in loop.records()
                  if r["t0"] >= t_part and r["t1"] < t_heal]
        acked_during = [r for r in during if loop.good(r)]
        failed = [r for r in during if not loop.good(r)]
        took = sorted(r["t1"] - r["t0"] for r in failed)
        conv = self.converge("db1", "db2")
        acked = self.acked(loop)
        on_db2 = self.notes("db2")
        missing = {i: t for i, t in acked.items() if on_db2.get(i) != t}
        print(f"db1 and db2 partitioned for {t_heal - t_part:.1f}s: "
              f"{len(during)} writes began and ended in it, "
              f"{len(acked_during)} acknowledged, {len(failed)} failed "
              f"(statuses {sorted({r['status'] for r in failed})}, each "
              f"after {took[len(took) // 2] if took else 0:.2f}s, the "
              f"quorum timeout); healed: the first write acknowledged "
              f"{t_ok - t_heal:.2f}s after; db1 and db2 hold the same "
              f"{len(on_db2)} notes {conv:.1f}s after the last write; "
              f"{len(acked)} acknowledged in all, {len(missing)} missing on "
              f"db2", flush=True)
        self.assertEqual(acked_during, [])
        self.assertGreater(len(failed), 0)
        self.assertEqual({r["status"] for r in failed}, {503})
        self.assertEqual(missing, {})

    def test_2_primary_killed_runbook(self):
        lab = self.lab
        old, new = "db1", "db2"
        self.assertEqual((self.role(old), self.role(new)),
                         ("primary", "replica"))
        loop = self.post_loop(rate=20, threads=4)
        loop.wait_more(40)
        t_kill = time.time()
        lab.kill9(old, "dbrepd")
        # the runbook, at once: the replica holds every acknowledged
        # commit (quorum 1): promote it
        st = self.status(new)
        rc, out, err = lab.exec(new, "dbrepctl", "promote", check=True)
        t_prom = time.time()
        # alone, it cannot have a commit confirmed: async until the old
        # primary (or a new replica) is back
        self.set_durability(new, "async")
        t_async = time.time()
        wait_for(lambda: self.first_ack_after(loop, t_kill), 15,
                 what="a write acknowledged by the new primary")
        t_ok = self.first_ack_after(loop, t_kill)
        loop.wait_more(40)
        # the old primary comes back: a replica of the new epoch
        t_back = time.time()
        lab.rc(old, "dbrepd", "start")
        wait_for(lambda: self.role(old) == "replica", 10,
                 what=f"{old} to come back as a replica")
        self.set_durability(new, lab.site.settings["durability"])
        loop.wait_more(40)
        loop.stop()
        failed = loop.failed(after=t_kill)
        after = [r for r in loop.records() if r["t0"] >= t_back]
        bad_after = [r for r in after if not loop.good(r)]
        acked = self.acked(loop)
        have = self.notes(new)
        lost = {i: t for i, t in acked.items() if have.get(i) != t}
        conv = self.converge(new, old)
        print(f"primary {old} killed during writes (quorum 1): the runbook "
              f"at once: {new} was a replica with lag "
              f"{st.get('lag_records')} records, promoted "
              f"{t_prom - t_kill:.2f}s after the kill ({out.strip()}), "
              f"made async {t_async - t_kill:.2f}s after; first write "
              f"acknowledged {t_ok - t_kill:.2f}s after the kill; "
              f"{len(failed)} writes failed meanwhile; {old} back as a "
              f"replica, quorum again, {len(bad_after)} failed after; "
              f"{len(acked)} notes acknowledged, "
              f"{len(lost)} lost; {old} converged {conv:.1f}s after",
              flush=True)
        self.assertEqual(lost, {})
        self.assertEqual(self.role(new), "primary")
        self.assertEqual(self.status(old).get("epoch"), "2")
        self.assertEqual(bad_after, [])


class AutomaticFailover(DbLab):
    """Three database hosts: with two, in quorum 1, the replica that
    promotes itself has no replica left to confirm a commit, and takes
    no write until the old primary is back (RUNBOOK.md)."""
    settings = {"db-failover": "auto after 2s"}
    extra = ["host db3\t10.200.0.33\tdb\trole replica"]

    def test_primary_killed_replica_promotes_itself(self):
        self.drill()

    def drill(self):
        lab = self.lab
        old, others = "db1", ("db2", "db3")
        self.assertEqual([self.role(h) for h in (old,) + others],
                         ["primary", "replica", "replica"])
        # the replicas may take over once the primary counts them
        for h in others:
            wait_for(lambda: self.status(h).get("takeover", "")
                     .startswith("yes"), 15,
                     what=f"{h} to say takeover yes")
        loop = self.post_loop(rate=20, threads=4)
        loop.wait_more(40)
        t_kill = time.time()
        lab.kill9(old, "dbrepd")
        new = wait_for(lambda: [h for h in others
                                if self.role(h) == "primary"], 20,
                       step=0.1, what="a replica to promote itself")
        t_prom = time.time()
        self.assertEqual(len(new), 1, new)
        new = new[0]
        wait_for(lambda: self.first_ack_after(loop, t_kill), 15,
                 what="a write acknowledged by the new primary")
        t_ok = self.first_ack_after(loop, t_kill)
        loop.wait_more(20)
        # the old primary back: a replica, it never takes a write
        lab.rc(old, "dbrepd", "start")
        wait_for(lambda: self.role(old) == "replica", 10,
                 what=f"{old} to come back as a replica")
        loop.wait_more(40)
        loop.stop()
        acked = self.acked(loop)
        have = self.notes(new)
        lost = {i: t for i, t in acked.items() if have.get(i) != t}
        conv = max(self.converge(new, h) for h in others + (old,)
                   if h != new)
        print(f"automatic failover (three database hosts, quorum 1, "
              f"failover auto after 2s): primary {old} killed; {new} "
              f"promoted itself {t_prom - t_kill:.2f}s after the kill "
              f"(status polled); first write acknowledged "
              f"{t_ok - t_kill:.2f}s after the kill; "
              f"{len(loop.failed(after=t_kill))} writes failed; "
              f"{len(acked)} acknowledged, {len(lost)} lost; {old} back "
              f"as a replica of epoch {self.status(old).get('epoch')}, "
              f"all converged {conv:.1f}s after", flush=True)
        self.assertEqual(lost, {})
        self.assertLess(t_ok - t_kill, 5.0)
        self.assertEqual(self.status(old).get("writable"), "no")
        self.assertEqual(sorted(self.role(h) for h in others + (old,)),
                         ["primary", "replica", "replica"])
