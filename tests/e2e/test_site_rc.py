"""The rc.d scripts on the demo site: status (exit 0 running, naming the
master's pid; 3 stopped, a dead or zombie pid in the pidfile included),
rc.d/site status over the whole site, reload refusing a broken conf
while the daemon goes on serving the old one, and stop escalating to
SIGKILL after STOP_TIMEOUT when a master ignores SIGTERM."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, alive, cmdline, wait_for          # noqa: E402
from sitelib import RCDIR, Client, SiteTest                 # noqa: E402

INSTANCES = [("dbrepd", "db1"), ("dbrepd", "db2"), ("appd", "app1"),
             ("appd", "app2"), ("webd", "web1"), ("webd", "web2"),
             ("lbd", "lbd")]


class RcTest(SiteTest):
    def setUp(self):
        super().setUp()
        self.site.heal()

    def site_status(self):
        p = subprocess.run([os.path.join(RCDIR, "site"), "status",
                            os.path.join(self.site.confdir, "site")],
                           env=self.site.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        return p.returncode, p.stdout

    def test_1_status(self):
        site = self.site
        for daemon, inst in INSTANCES:
            st, out, err = site.rc(daemon, "status", inst)
            self.assertEqual(st, 0, out + err)
            m = re.fullmatch(rf"{daemon} \({inst}\): running \(pid (\d+)\)"
                             r"\n", out)
            self.assertTrue(m, out)
            pid = int(m.group(1))
            self.assertEqual(pid, site.pid(daemon, inst))
            self.assertTrue(cmdline(pid).startswith(f"{daemon}: master"),
                            cmdline(pid))
        st, out = self.site_status()
        self.assertEqual(st, 0, out)
        self.assertEqual(out.count(": running (pid "), 7, out)
        # stopped: 3, for the instance and for the site
        t0 = time.time()
        st, out, err = site.rc("webd", "stop", "web2")
        took = time.time() - t0
        self.assertEqual((st, out), (0, "webd (web2): stopped\n"), err)
        self.assertFalse(os.path.exists(site.pidfile("webd", "web2")))
        st, out, err = site.rc("webd", "status", "web2")
        self.assertEqual((st, out), (3, "webd (web2): stopped\n"), err)
        st, out = self.site_status()
        self.assertEqual(st, 3, out)
        self.assertIn("webd (web2): stopped", out)
        self.assertEqual(out.count(": running (pid "), 6, out)
        # a graceful stop of an idle webd is quick (it waits for the master
        # to exit, not for init to reap it)
        print(f"rc.d/webd stop web2 took {took:.2f}s")
        # (under ASan each process's leak check at exit adds to it)
        self.assertLess(took, 1.5 * SLOW)
        st, out, err = site.rc("webd", "start", "web2")
        self.assertEqual(st, 0, out + err)
        self.assertRegex(out, r"webd \(web2\): started \(pid \d+\)")
        self.assertEqual(self.site_status()[0], 0)

    def test_2_status_of_dead_and_zombie_pids(self):
        site = self.site
        pidfile = site.pidfile("webd", "ghost")
        self.addCleanup(lambda: os.path.exists(pidfile) and
                        os.unlink(pidfile))
        # a pid that no process has
        p = subprocess.Popen(["true"])
        p.wait()
        with open(pidfile, "w") as f:
            f.write(f"{p.pid}\n")
        st, out, err = site.rc("webd", "status", "ghost")
        self.assertEqual((st, out), (3, "webd (ghost): stopped\n"), err)
        # a zombie: exited, not reaped yet (as a daemon is until init
        # reaps it, which some inits do late): stopped too
        z = subprocess.Popen(["sh", "-c", "exit 0"])
        wait_for(lambda: open(f"/proc/{z.pid}/stat").read()
                 .rsplit(")", 1)[1].split()[0] == "Z", 5,
                 what="a zombie")
        self.addCleanup(z.wait)
        with open(pidfile, "w") as f:
            f.write(f"{z.pid}\n")
        st, out, err = site.rc("webd", "status", "ghost")
        self.assertEqual((st, out), (3, "webd (ghost): stopped\n"), err)
        st, out, err = site.rc("webd", "stop", "ghost")
        self.assertEqual((st, out), (0, "webd (ghost): not running\n"), err)

    def test_3_reload_refuses_a_broken_conf(self):
        site = self.site
        conf = os.path.join(site.confdir, "web2.conf")
        with open(conf) as f:
            good = f.read()
        self.addCleanup(lambda: open(conf, "w").write(good))
        master = site.pid("webd", "web2")
        procs = site.procs("webd", "web2")
        with open(conf, "a") as f:
            f.write("no-such-keyword yes\n")
        st, out, err = site.rc("webd", "configtest", "web2")
        self.assertEqual(st, 1, out + err)
        st, out, err = site.rc("webd", "reload", "web2")
        self.assertEqual(st, 1, out + err)
        self.assertIn("webd (web2): configuration has errors, not "
                      "reloading", err)
        # the daemon's own message names the file and the line
        self.assertRegex(err, rf"{re.escape(conf)}:\d+: .*no-such-keyword")
        # not signalled: the same processes go on serving
        self.assertEqual(site.procs("webd", "web2"), procs)
        c = Client(site)
        for _ in range(5):
            r = c.get("/", port=site.ports["web2"])
            self.assertEqual((r.status, r.served_by), (200, "web2"))
            self.assertEqual(c.get("/api/whoami", port=site.ports["web2"])
                             .json()["instance"], "app2")
        st, out, err = site.rc("webd", "status", "web2")
        self.assertEqual(st, 0)
        # the conf fixed, the reload goes through: generation 2, so the
        # refused one never reached the daemon
        with open(conf, "w") as f:
            f.write(good)
        st, out, err = site.rc("webd", "reload", "web2")
        self.assertEqual((st, out), (0, f"webd (web2): reloading (pid "
                                        f"{master})\n"), err)
        self.syslog.wait(rf"webd\[{master}\]: reload done: configuration "
                         r"generation 2 running")
        self.assertEqual(site.pid("webd", "web2"), master)

    def test_4_stop_escalates_to_sigkill(self):
        site = self.site
        master = site.pid("webd", "web2")
        procs = site.procs("webd", "web2")
        self.assertGreater(len(procs), 1)

        def cont():
            if alive(master):
                os.kill(master, signal.SIGCONT)
        self.addCleanup(cont)
        # a master that does not act on SIGTERM
        os.kill(master, signal.SIGSTOP)
        t0 = time.time()
        st, out, err = site.rc("webd", "stop", "web2", STOP_TIMEOUT="2")
        took = time.time() - t0
        self.assertEqual(st, 0, out + err)
        self.assertIn("webd (web2): still running after 2s, killing", err)
        self.assertEqual(out, "webd (web2): stopped\n")
        self.assertGreaterEqual(took, 2)
        self.assertLess(took, 5)
        # gone when stop returns, the master and its workers
        self.assertEqual([p for p in procs if alive(p)], [])
        self.assertFalse(os.path.exists(site.pidfile("webd", "web2")))
        self.assertEqual(site.rc("webd", "status", "web2")[0], 3)
        print(f"stop of a stopped master: SIGKILL after {took:.2f}s "
              "(STOP_TIMEOUT=2)")
        st, out, err = site.rc("webd", "start", "web2")
        self.assertEqual(st, 0, out + err)
        site.wait_server("web2", True)
