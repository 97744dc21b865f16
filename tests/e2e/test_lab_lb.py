"""The load balancers across hosts (tests/e2e/lab.sh): a client loop on
the client host asks the service address over HTTPS, each of its
threads offering the TLS session of its last answer, while lb1, which
holds the address, loses its lbd (kill -9), then, separately, its link
(unplugged at the switch).  keepalived moves the address to lb2; each
drill measures the longest time without an answer and counts the failed
requests, checks that the sessions made on lb1 resume on lb2 (both lbd
read the same ticket key), then brings lb1 back and checks that the
address stays on lb2 (nopreempt: no flapping).  Then web1 loses its webd
and appd at once: no request fails once lbd's checks have taken it out.
Each test prints its figures."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for                            # noqa: E402
from lablib import LabTest, Loop                        # noqa: E402

GAP_MAX = 3.0           # seconds without an answer during a failover


class LoadBalancers(LabTest):
    def setUp(self):
        lab = self.lab
        lab.heal()
        for h in ("lb1", "lb2"):
            lab.link(h, "up")
        for h in ("web1", "web2", "lb1", "lb2"):
            lab.rc(h, "site", "start")
        for w in ("web1", "web2"):
            wait_for(lambda: lab.server_up("lb1", w) == 1.0, 10,
                     what=f"{w} UP on lb1")
        self.switchback = lab.ensure_master("lb1")

    def https_loop(self, **kw):
        loop = Loop(self.lab, f"https://{self.lab.name}/api/notes?limit=1",
                    resume=True, **kw)
        self.addCleanup(loop.stop)
        return loop

    def resumed_across(self, loop, t_from):
        """For each thread, its first answer from lb2 after t_from:
        whether its session (made on lb1) was resumed."""
        firsts = {}
        for r in loop.ok(after=t_from):
            if r.get("lb") == "lb2" and r["thread"] not in firsts:
                firsts[r["thread"]] = r["resumed"]
        return firsts

    def watch_vip(self, seconds):
        """The holders of the address seen, polled for `seconds`."""
        seen = []
        end = time.time() + seconds
        while time.time() < end:
            h = self.lab.vip_holder()
            if not seen or seen[-1] != h:
                seen.append(h)
            time.sleep(0.05)
        return seen

    def failover(self, what, cut, restore):
        """cut() takes lb1 out; restore() brings it back.  Returns the
        figures printed by the caller."""
        lab = self.lab
        loop = self.https_loop()
        loop.wait_more(40)
        self.assertEqual({r["lb"] for r in loop.ok()}, {"lb1"})
        t_cut = time.time()
        cut()
        t_moved = lab.wait_vip("lb2", timeout=10)
        loop.wait_more(80)
        gap, gap_at = loop.longest_gap(t_cut, t_moved)
        failed = loop.failed(after=t_cut)
        total = len([r for r in loop.records() if r["t0"] >= t_cut])
        after = [r for r in loop.records() if r["t0"] >= t_moved + 0.5]
        resumed = self.resumed_across(loop, t_cut)
        # lb1 comes back: the address stays on lb2
        t_back = time.time()
        restore()
        # long enough for lb1's check to pass (rise 2) and for a
        # preemption, were there one, to happen
        seen = self.watch_vip(4.0)
        back = lab.vrrp_states("lb1", since=t_back)
        loop.wait_more(20)
        loop.stop()
        during_back = loop.failed(after=t_back)
        print(f"{what}: the address moved to lb2 after "
              f"{t_moved - t_cut:.2f}s; longest time without an answer "
              f"{gap:.2f}s (from +{gap_at - t_cut:.2f}s); {len(failed)} "
              f"of {total} requests failed "
              f"({sorted({(r['err'] or '')[:40] for r in failed})[:3]}); "
              f"sessions made on lb1 resumed on lb2: "
              f"{sum(1 for v in resumed.values() if v)} of {len(resumed)} "
              f"threads; lb1 back: its states {[s for _, s in back]}, "
              f"holders seen {seen}, {len(during_back)} failed; "
              f"switched back to lb1 before the drill in "
              f"{self.switchback:.2f}s", flush=True)
        self.assertLess(gap, GAP_MAX)
        self.assertEqual([r for r in after if not loop.good(r)], [])
        self.assertEqual({r["lb"] for r in after}, {"lb2"})
        self.assertEqual(len(resumed), 4, resumed)
        self.assertTrue(all(resumed.values()), resumed)
        # no flapping: lb2 kept the address all along
        self.assertEqual(seen, [["lb2"]])
        self.assertEqual(during_back, [])
        self.assertIn("BACKUP", [s for _, s in back])
        self.assertNotIn("MASTER", [s for _, s in back])

    def test_1_lbd_killed(self):
        lab = self.lab
        self.failover("lbd on lb1 killed (kill -9)",
                      lambda: lab.kill9("lb1", "lbd"),
                      lambda: lab.rc("lb1", "lbd", "start"))

    def test_2_link_down(self):
        lab = self.lab
        self.failover("lb1's link down (unplugged at the switch)",
                      lambda: lab.link("lb1", "down"),
                      lambda: lab.link("lb1", "up"))

    def test_3_planned_switchover(self):
        """The runbook's move by hand (keepalived stopped on the holder):
        sessions resume on the other host, and what fails is measured."""
        lab = self.lab
        loop = self.https_loop(rate=20, threads=2)
        loop.wait_more(20)
        t0 = time.time()
        lab.rc("lb1", "keepalived", "stop")
        t_moved = lab.wait_vip("lb2")
        lab.rc("lb1", "keepalived", "start")
        loop.wait_more(30)
        seen = self.watch_vip(2.0)
        loop.stop()
        gap, _ = loop.longest_gap(t0, t_moved)
        resumed = self.resumed_across(loop, t0)
        failed = loop.failed(after=t0)
        print(f"planned switchover (rc.d/keepalived stop on lb1): address "
              f"on lb2 after {t_moved - t0:.2f}s, longest time without an "
              f"answer {gap:.2f}s, {len(failed)} failed; sessions resumed "
              f"on lb2: {resumed}", flush=True)
        self.assertEqual(seen, [["lb2"]])
        self.assertTrue(resumed and all(resumed.values()), resumed)
        self.assertLess(gap, GAP_MAX)

    def test_4_web1_killed(self):
        """webd and appd of web1 killed at once: lbd (on the host that
        holds the address) takes web1 out; no request fails after."""
        lab = self.lab
        loop = self.https_loop()
        loop.wait_more(40)
        t_kill = time.time()
        lab.kill9("web1", "webd")
        lab.kill9("web1", "appd")
        wait_for(lambda: lab.server_up("lb1", "web1") == 0.0, 10,
                 step=0.05, what="web1 DOWN on lb1")
        t_down = time.time()
        wait_for(lambda: lab.server_up("lb2", "web1") == 0.0, 10,
                 step=0.05, what="web1 DOWN on lb2")
        loop.wait_more(80)
        window = loop.failed(after=t_kill, before=t_down)
        after = [r for r in loop.records() if r["t0"] >= t_down]
        # web1 back
        t_start = time.time()
        lab.rc("web1", "site", "start")
        wait_for(lambda: lab.server_up("lb1", "web1") == 1.0, 10,
                 step=0.05, what="web1 UP on lb1")
        t_up = time.time()
        loop.wait_more(60)
        loop.stop()
        later = [r for r in loop.records() if r["t0"] >= t_up + 0.5]
        in_window = [r for r in loop.records()
                     if t_kill <= r["t0"] < t_down]
        print(f"web1 killed (webd and appd): lbd on lb1 took it out after "
              f"{t_down - t_kill:.2f}s (check every 1s, fall 2); "
              f"{len(window)} of {len(in_window)} requests failed in that "
              f"window (lbd retries refused connections on web2), 0 "
              f"expected after: "
              f"{len([r for r in after if not loop.good(r)])} of "
              f"{len(after)}; restarted by rc.d/site, UP after "
              f"{t_up - t_start:.2f}s", flush=True)
        self.assertEqual([r for r in after if not loop.good(r)], [])
        self.assertEqual({r["web"] for r in after if r["t0"] < t_start},
                         {"web2"})
        self.assertEqual({r["web"] for r in later}, {"web1", "web2"})
