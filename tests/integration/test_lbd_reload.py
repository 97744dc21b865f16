"""Reloading lbd under load: SIGHUP with a changed conf while clients
loop on kept-alive connections, with zero failed requests; a new
generation of workers and checker that keeps the servers' health (a
DOWN server stays DOWN, never gets a request) and takes the new server;
a broken conf refused with the old one kept serving."""
import re
import signal
import time

from harness import alive, wait_for
from lbdtest import CHECK, LbdTest, Loop, dead_addr, get


CONF = """
frontend www {{
    listen 127.0.0.1:{{port}}
    backend webs
}}
backend webs {{
{servers}
    server gone {gone}
    {check}
}}
"""


class ReloadTest(LbdTest):
    def test_reload_under_load(self):
        s1, s2, s3 = self.backends("s1", "s2", "s3")
        gone = dead_addr()
        self.lbd(CONF.format(servers=self.server_lines([s1, s2]),
                             gone=gone, check=CHECK))
        lb = self.lb
        self.wait_state("webs/gone", "DOWN")
        old = set(lb.workers())
        self.seen_pids()
        with Loop(self.port, threads=3) as loop:
            wait_for(lambda: loop.n > 30, 5, what="requests")
            new_body = CONF.format(servers=self.server_lines([s1, s2, s3]),
                                   gone=gone, check=CHECK).replace(
                "{port}", str(self.port))
            lb.write_conf(self.lbd_conf(new_body))
            lb.signal(signal.SIGHUP)
            # the state while the generations change, and after
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                self.assertEqual(self.metrics()("lbd_server_up",
                                                backend="webs",
                                                server="gone"), 0)
                time.sleep(0.05)
            self.syslog.wait(rf"lbd\[{lb.pid}\]: reload done", 10)
            wait_for(lambda: lb.workers() and
                     not (set(lb.workers()) & old), 10,
                     what="the old workers to leave")
            self.seen_pids()
            self.assertEqual(self.state("webs/gone"), "DOWN")
            n = loop.n
            wait_for(lambda: loop.n > n + 60, 10, what="more requests")
            after = loop.seen[n:]
        self.assertEqual(loop.failures, [])
        self.assertEqual(set(after), {"s1", "s2", "s3"})
        self.assertNotIn("gone", loop.seen)
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="gone"), 0)
        self.assertEqual(m("lbd_server_up", backend="webs", server="gone"),
                         0)
        self.assertEqual(m("lbd_server_check_up_down_total", backend="webs",
                           server="gone"), 1)
        # the counters went on across the generations
        self.assertEqual(m("lbd_frontend_responses_total", frontend="www",
                           code="2xx"), len(loop.seen))
        self.assertEqual([ln for ln in self.syslog.lines()
                          if "server webs/gone is UP" in ln], [])

    def test_renamed_servers_give_their_shared_memory_back(self):
        """Each server's state has a named block in shared memory, kept
        while a running generation has its name.  Reloads that rename
        servers again and again go on for ever: the blocks of names that
        only gone generations had are given back (they used to fill the
        table, and then a reload was refused)."""
        s1, = self.backends("s1")
        dead = dead_addr()

        def conf(gen, nback=40):
            # 2560 servers whose names change with each reload
            return "".join(f"""
backend g{gen}b{b} {{
""" + "".join(f"    server s{gen}_{b}_{i} {dead}\n" for i in range(64)) +
                "}\n" for b in range(nback))
        self.simple([s1], top="", workers=1)
        lb = self.lb
        good = open(lb.conf_path).read()
        full = []
        for gen in range(16):   # 40960 names: 2.5 times the table
            self.syslog.mark()
            lb.write_conf(good + conf(gen))
            lb.signal(signal.SIGHUP)
            ln = self.syslog.wait(rf"lbd\[{lb.pid}\]: (reload done|reload "
                                  r"failed)", 20)
            self.assertIn("reload done", ln, (gen, self.syslog.lines()))
            full += [x for x in self.syslog.lines()
                     if re.search(r"(shared memory|segment) full", x)]
            # the old generation gone, its names' blocks go back
            wait_for(lambda: len(lb.workers()) == 1, 10, what="old worker")
        self.assertEqual(self.who(), "s1")
        # and their statistics records: the last servers have theirs
        self.assertFalse(full)
        m = self.metrics()
        self.assertIsNotNone(m.get("lbd_server_up", backend="g15b39",
                                   server="s15_39_63"))
        self.assertIsNone(m.get("lbd_server_up", backend="g14b39",
                                server="s14_39_63"))
        # one conf with more servers than the table has room for is
        # refused, and the running one goes on
        self.syslog.mark()
        lb.write_conf(good + conf(99, nback=260))
        lb.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{lb.pid}\]: reload failed", 30)
        self.assertTrue(any("no room left in shared memory" in x
                            for x in self.syslog.lines()))
        self.assertTrue(alive(lb.pid))
        self.assertEqual(self.who(), "s1")

    def test_metrics_of_a_removed_backend_go(self):
        """A reload that removes a backend takes its series out of
        /metrics; those of what stays go on counting."""
        s1, s2 = self.backends("s1", "s2")
        self.lbd(f"""
frontend www {{
    listen 127.0.0.1:{{port}}
    route path /old/ backend old
    backend webs
}}
backend webs {{
    server s1 {s1.addr}
}}
backend old {{
    server s2 {s2.addr}
}}
""", workers=1)
        self.get("/hello")
        self.get("/old/hello")
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_server_requests_total", backend="old",
                           server="s2"), 1)
        lb = self.lb
        conf = open(lb.conf_path).read()
        lb.write_conf(conf.replace("    route path /old/ backend old\n", "")
                      .replace(f"backend old {{{{\n    server s2 {s2.addr}"
                               "\n}}\n".replace("{{", "{").replace("}}", "}"),
                               ""))
        self.assertNotIn("backend old", open(lb.conf_path).read())
        self.syslog.mark()
        lb.signal(signal.SIGHUP)
        self.syslog.wait(rf"lbd\[{lb.pid}\]: reload done", 10)
        wait_for(lambda: 'backend="old"' not in get(
            self.stats, "/metrics").body.decode(), 5,
            what="the old backend's series gone")
        self.get("/hello")
        m = self.metrics(settle=True)
        self.assertEqual(m("lbd_server_requests_total", backend="webs",
                           server="s1"), 2)

    def test_broken_conf_keeps_the_old_one(self):
        s1, = self.backends("s1")
        self.simple([s1])
        lb = self.lb
        old = set(lb.workers())
        good = open(lb.conf_path).read()
        lb.write_conf(good.replace("backend webs\n", "backend nosuch\n", 1))
        with Loop(self.port, threads=2) as loop:
            wait_for(lambda: loop.n > 10, 5, what="requests")
            lb.signal(signal.SIGHUP)
            self.syslog.wait(rf"lbd\[{lb.pid}\]: .*no backend \"nosuch\"",
                             10)
            self.syslog.wait(rf"lbd\[{lb.pid}\]: reload failed, keeping "
                             r"current configuration", 10)
            n = loop.n
            wait_for(lambda: loop.n > n + 20, 5, what="more requests")
        self.assertEqual(loop.failures, [])
        self.assertEqual(set(lb.workers()), old)
