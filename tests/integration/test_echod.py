"""The foundation (common/proc, event, net, conf, log, stats) through the
echod test daemon: real processes, real sockets, a real syslog daemon."""
import os
import pwd
import signal
import socket
import threading
import time

from harness import (DaemonTest, alive, children, cmdline, free_port,
                     proc_status, wait_for, wait_port, SLOW)


def ask(addr, *lines, timeout=5.0):
    """Send lines, return the reply lines (one per line sent)."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout * SLOW)
        s.connect(addr)
    else:
        s = socket.create_connection(addr, timeout=timeout * SLOW)
    with s:
        s.sendall("".join(l + "\n" for l in lines).encode())
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()


CONF = """
workers {workers}
pidfile "@PIDFILE@"
listen 127.0.0.1:{port}
prefix "{prefix}"
{extra}
"""


class EchodTest(DaemonTest):
    def echod(self, workers=2, prefix="echo: ", extra="", port=None):
        self.port = port or free_port()
        return self.daemon("echod", CONF.format(workers=workers,
                           port=self.port, prefix=prefix, extra=extra))

    def test_foreground(self):
        d = self.echod().start(foreground=True)
        self.assertEqual(ask(("127.0.0.1", self.port), "hello"),
                         ["echo: hello"])
        self.assertEqual(len(d.wait_workers(2)), 2)
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")

    def test_daemonized_pidfile_and_second_instance(self):
        d = self.echod().start()
        with open(d.pidfile) as f:
            self.assertEqual(int(f.read()), d.pid)
        # the master is detached: its parent is not us
        self.assertNotEqual(proc_status(d.pid, "PPid")[0], str(os.getpid()))
        self.assertIn("master", cmdline(d.pid))
        for w in d.workers():
            self.assertRegex(cmdline(w), r"echod: worker [12]/2")
        rc, out = d.run()
        self.assertEqual(rc, 1)
        self.assertIn(f"already running as pid {d.pid}", out)
        self.assertEqual(ask(("127.0.0.1", self.port), "x"), ["echo: x"])
        d.stop()
        self.assertFalse(os.path.exists(d.pidfile))

    def test_configtest(self):
        d = self.echod()
        rc, out = d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"))
        d.write_conf("workers 0\nlisten 127.0.0.1:99999\nlisen x\n")
        rc, out = d.run("-n")
        self.assertEqual(rc, 1)
        p = d.conf_path
        self.assertIn(f"{p}:1: invalid workers 0 (1-64)", out)
        self.assertIn(f"{p}:2: invalid address \"127.0.0.1:99999\": "
                      "invalid port \"99999\" (1-65535)", out)
        self.assertIn(f"{p}:3: unknown keyword \"lisen\", did you mean "
                      "\"listen\"?", out)
        self.assertIn(": 3 errors", out)
        self.assertNotIn("configuration OK", out)
        # -D overrides a macro of the file
        d.write_conf("p = 0\nlisten 127.0.0.1:$p\n")
        self.assertEqual(d.run("-n")[0], 1)
        self.assertEqual(d.run("-n", "-D", f"p={free_port()}")[0], 0)

    def test_workers_run_as_conf_user(self):
        d = self.echod(extra="user nobody").start()
        nobody = pwd.getpwnam("nobody")
        for w in d.wait_workers(2):
            # (a worker takes its title before it drops its privileges)
            want = [str(nobody.pw_uid)] * 4
            wait_for(lambda: proc_status(w, "Uid") == want, 5 * SLOW,
                     what=f"worker {w} to run as nobody")
            uids = proc_status(w, "Uid")
            gids = proc_status(w, "Gid")
            self.assertEqual(set(uids), {str(nobody.pw_uid)})
            self.assertEqual(set(gids), {str(nobody.pw_gid)})
            self.assertEqual(proc_status(w, "Groups"), [str(nobody.pw_gid)])
        self.assertEqual(proc_status(d.pid, "Uid")[0], "0")

    def test_worker_killed_is_respawned(self):
        d = self.echod().start()
        before = d.wait_workers(2)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        self.syslog.wait(rf"echod\[{d.pid}\]: worker \d \(pid {victim}\) "
                         r"killed by signal 9 \(Killed\), respawning")
        after = d.wait_workers(2)
        self.assertNotIn(victim, after)
        for _ in range(20):
            self.assertEqual(ask(("127.0.0.1", self.port), "still"),
                             ["echo: still"])

    def test_respawn_backoff(self):
        d = self.echod(workers=1).start()
        delays = []
        for i in range(4):
            w = d.wait_workers(1)[0]
            os.kill(w, signal.SIGKILL)
            ln = self.syslog.wait(rf"\(pid {w}\) killed by signal 9")
            delays.append(ln)
        self.syslog.wait(r"respawning worker 1 in 100 ms")
        self.syslog.wait(r"respawning worker 1 in 200 ms")
        self.syslog.wait(r"respawning worker 1 in 400 ms")
        self.assertEqual(ask(("127.0.0.1", self.port), "up"), ["echo: up"])

    def test_reload_broken_conf_keeps_serving(self):
        d = self.echod().start()
        old = d.wait_workers(2)
        d.write_conf(CONF.format(workers=2, port=self.port, prefix="new: ",
                                 extra="bogus-keyword 1"))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"{d.conf_path}:6: unknown keyword "
                         r"\"bogus-keyword\"")
        self.syslog.wait("reload failed, keeping current configuration",
                         tree=d.pid)
        self.assertEqual(ask(("127.0.0.1", self.port), "a"), ["echo: a"])
        self.assertEqual(d.workers(), old)

    def test_workers_retired_while_starting_leave_cleanly(self):
        """A reload that retires workers still starting (a slow module,
        a quick second reload): they are told to go before they watch
        their signals, and must still start, then leave as the others
        do, not die of SIGTERM's default action."""
        d = self.echod(extra=f"start-delay {2 * SLOW}s").start()
        old = d.wait_workers(2)
        d.write_conf(CONF.format(workers=2, port=self.port, prefix="v2: ",
                                 extra=""))
        t0 = time.time()
        d.signal(signal.SIGHUP)
        self.syslog.wait(r"reload done: configuration generation 2",
                         tree=d.pid)
        # the old ones were still in their start delay when told to go
        self.assertLess(time.time() - t0, 2 * SLOW)
        self.assertTrue(all(alive(p) for p in old), old)
        self.assertEqual(ask(("127.0.0.1", self.port), "x"), ["v2: x"])
        wait_for(lambda: not any(alive(p) for p in old), 10,
                 what="the old workers to leave")
        self.assertGreater(time.time() - t0, 1.5 * SLOW)
        mine = [ln for ln in self.syslog.lines() if f"echod[{d.pid}]: " in ln]
        self.assertFalse([ln for ln in mine if "killed by signal" in ln or
                          "respawning" in ln], mine)

    def test_reload_more_workers_without_failures(self):
        d = self.echod(workers=2).start()
        stop = threading.Event()
        errors, done = [], [0]

        def client():
            while not stop.is_set():
                try:
                    r = ask(("127.0.0.1", self.port), "ping", timeout=5)
                    if r not in (["echo: ping"], ["v2: ping"]):
                        errors.append(repr(r))
                    done[0] += 1
                except OSError as e:
                    errors.append(repr(e))
        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        old = set(d.workers())
        d.write_conf(CONF.format(workers=3, port=self.port, prefix="v2: ",
                                 extra=""))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"echod\[{d.pid}\]: reload done: configuration "
                         r"generation 2 running \(3 workers\)")
        wait_for(lambda: len(d.workers()) == 3 and
                 not (set(d.workers()) & old), 10,
                 what="the old workers to leave")
        time.sleep(0.3)
        stop.set()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(done[0], 50)
        self.assertEqual(ask(("127.0.0.1", self.port), "p"), ["v2: p"])

    def test_reload_adds_and_removes_listeners(self):
        d = self.echod().start()
        p2 = free_port()
        sock = os.path.join(self.dir, "e.sock")
        d.write_conf(CONF.format(workers=2, port=p2, prefix="", extra=
                                 f'listen "unix:{sock}" mode 0600'))
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"echod\[{d.pid}\]: reload done: configuration "
                         "generation 2 running")
        self.assertEqual(ask(("127.0.0.1", p2), "two"), ["two"])
        self.assertEqual(ask(sock, "unix"), ["unix"])
        self.assertEqual(os.stat(sock).st_mode & 0o777, 0o600)
        wait_for(lambda: not self._accepts(self.port), 10,
                 what="the removed listener to close")
        d.stop()
        self.assertFalse(os.path.exists(sock), "socket file left behind")

    def _accepts(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False

    def test_sigterm_finishes_slow_request(self):
        d = self.echod().start(foreground=True)
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"sleep 1500\n")
        time.sleep(0.3)
        t0 = time.time()
        d.signal(signal.SIGTERM)
        s.settimeout(10)
        self.assertEqual(s.recv(100), b"slept 1500\n")
        self.assertEqual(d.proc.wait(10), 0)
        self.assertGreater(time.time() - t0, 0.9)
        s.close()
        # once stopping, nothing listens
        self.assertFalse(self._accepts(self.port))

    def test_shutdown_timeout_kills_stuck_work(self):
        d = self.echod(extra="shutdown-timeout 500ms").start()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"sleep 60000\n")
        time.sleep(0.3)
        t0 = time.time()
        d.stop()
        self.assertLess(time.time() - t0, 5 * SLOW)
        self.syslog.wait("still running after the shutdown timeout, "
                         "killing")
        s.close()

    def test_sigint_stops_fast(self):
        d = self.echod().start()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"sleep 60000\n")
        time.sleep(0.2)
        ws = d.workers()
        t0 = time.time()
        d.stop(signal.SIGINT)
        self.assertLess(time.time() - t0, 3 * SLOW)
        for w in ws:
            self.assertFalse(alive(w))
        s.close()

    def test_workers_exit_when_master_dies(self):
        d = self.echod().start()
        ws = d.wait_workers(2)
        os.kill(d.pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(w) for w in ws), 5,
                 what="workers to exit after the master's death")

    def test_unix_listener_and_stale_socket(self):
        sock = os.path.join(self.dir, "echo.sock")
        # a stale socket file from a dead process is replaced
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock)
        s.close()
        d = self.echod(extra=f'listen "unix:{sock}" mode 0660 '
                       'owner nobody').start()
        st = os.stat(sock)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        self.assertEqual(st.st_uid, pwd.getpwnam("nobody").pw_uid)
        self.assertEqual(ask(sock, "via unix"), ["echo: via unix"])
        # a second daemon may not steal a live socket
        other = self.daemon("echod", f'pidfile "{self.dir}/b.pid"\n'
                            f'listen "unix:{sock}"\n', name="other")
        rc, out = other.run()
        self.assertEqual(rc, 1)
        self.assertIn(f"cannot listen on unix:{sock}", out)
        d.stop()

    def test_acl_denies_before_reading(self):
        d = self.echod(extra="deny 127.0.0.1\nallow 127.0.0.0/8").start()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(5)
        s.sendall(b"hello\n")
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        self.syslog.wait(r"connection from 127\.0\.0\.1:\d+ denied")
        # 127.0.0.2 is allowed by the second rule
        self.assertEqual(ask(("127.0.0.2", self.port), "ok")
                         if False else ["echo: ok"], ["echo: ok"])
        s2 = socket.socket()
        s2.bind(("127.0.0.2", 0))
        s2.settimeout(5)
        s2.connect(("127.0.0.1", self.port))
        s2.sendall(b"ok\n")
        self.assertEqual(s2.recv(100), b"echo: ok\n")
        s2.close()

    def test_stats_shared_and_kept_across_reload(self):
        d = self.echod().start()
        addr = ("127.0.0.1", self.port)
        for _ in range(30):
            ask(addr, "x")
        m = self._metric(addr, "echod_lines_total")
        self.assertGreaterEqual(m, 30)
        d.signal(signal.SIGHUP)
        self.syslog.wait(rf"echod\[{d.pid}\]: reload done: configuration "
                         "generation 2 running")
        self.assertGreaterEqual(self._metric(addr, "echod_lines_total"),
                                m + 1)
        # one open connection counted, whichever worker holds it (the
        # metrics connection is the other)
        s = socket.create_connection(addr)
        wait_for(lambda: self._metric(addr, "echod_connections") == 2, 5,
                 what="two connections counted")
        s.close()

    def _metric(self, addr, name):
        s = socket.create_connection(addr, timeout=5)
        s.sendall(b"metrics\n")
        data = b""
        while not data.endswith(b"# EOF\n"):
            c = s.recv(65536)
            if not c:
                break
            data += c
        s.close()
        for ln in data.decode().splitlines():
            if ln.startswith(name + " "):
                return int(ln.split()[1])
        raise AssertionError(f"{name} not in metrics:\n{data.decode()}")

    def test_accept_spread_across_workers(self):
        d = self.echod(workers=2).start()
        workers = d.wait_workers(2)
        addr = ("127.0.0.1", self.port)
        seen = {}
        lock = threading.Lock()

        def client():
            for _ in range(100):
                pid = int(ask(addr, "pid")[0])
                with lock:
                    seen[pid] = seen.get(pid, 0) + 1
        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print("accept spread, 400 connections from 4 clients over 2 "
              "workers:", sorted(seen.values()))
        self.assertEqual(set(seen), set(workers))
        # EPOLLEXCLUSIVE wakes one waiter per connection: neither worker
        # may be starved.  The spread is not even: the kernel wakes the
        # first idle waiter in its queue, so under light load one worker
        # takes more (seen: 156/244 to 18/382 of 400, the latter under
        # the parallel test run's load).  echod keeps the plain
        # behaviour; the HTTP daemons share their connections out
        # (common/http_worker.c, test_http_engine's burst test).
        self.assertGreater(min(seen.values()), 400 * 0.01)

    def test_logs_reach_syslog(self):
        d = self.echod(extra="syslog-facility local3").start()
        ln = self.syslog.wait(rf"echod\[{d.pid}\]: started, 2 workers")
        self.assertTrue(ln.split()[1].startswith("local3.info"), ln)
        d.stop()
        self.syslog.wait(rf"echod\[{d.pid}\]: stopped")

    def test_sigusr1_is_harmless(self):
        d = self.echod().start()
        d.signal(signal.SIGUSR1)
        self.syslog.wait("reopening log files", tree=d.pid)
        self.assertEqual(ask(("127.0.0.1", self.port), "u"), ["echo: u"])
        # both workers still there (the second may still be starting)
        self.assertEqual(len(d.wait_workers(2)), 2)
