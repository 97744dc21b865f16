"""webd under way: a reload that changes the document root while clients
keep asking (zero failed requests, the new root served after), and a
slowloris attack by Debian's slowhttptest that does not stop a normal
client from being served promptly."""
import os
import re
import signal
import subprocess
import threading
import time

from harness import SLOW, free_port, wait_for, wait_port
from httpc import Closed, Conn, HttpTest, get, tcp_conns
from webdtest import webd_conf, write

SITE = """
header-timeout {ht}
access-log off
server "site" {{
	listen 127.0.0.1:{port}
	root "@DIR@/{root}"
}}
"""


class LoadTest(HttpTest):
    def site(self, root="www1", ht="10s"):
        return SITE.format(port=self.port, root=root, ht=ht)

    def test_reload_new_root_under_load(self):
        self.port = free_port()
        for v in ("1", "2"):
            write(os.path.join(self.dir, f"www{v}", "index.html"),
                  f"v{v}\n".encode())
        d = self.daemon("webd", webd_conf(self.site(), workers=2))
        d.start()
        wait_port("127.0.0.1", self.port)
        stop = threading.Event()
        lock = threading.Lock()
        errors, answers = [], []        # (start, end, body)
        retried = [0]

        def fresh():
            while not stop.is_set():
                t0 = time.time()
                try:
                    r = get(self.port, "/index.html", timeout=5)
                    ok = r.status == 200 and r.body in (b"v1\n", b"v2\n")
                    with lock:
                        (answers if ok else errors).append(
                            (t0, time.time(), r.body) if ok else repr(r))
                except (OSError, Closed) as e:
                    with lock:
                        errors.append(repr(e))

        def keepalive():
            c = None
            while not stop.is_set():
                t0 = time.time()
                reused = c is not None
                try:
                    if c is None:
                        c = Conn(self.port)
                    r = c.request("GET", "/index.html")
                except (ConnectionResetError, BrokenPipeError, Closed) as e:
                    # an idle keep-alive connection the server closed
                    # (an old worker draining): a client retries an
                    # idempotent request on a new one (RFC 9112 9.3.1)
                    if c is not None:
                        c.close()
                    c = None
                    if reused:
                        retried[0] += 1
                        continue
                    with lock:
                        errors.append(repr(e))
                    continue
                except OSError as e:
                    with lock:
                        errors.append(repr(e))
                    c = None
                    continue
                with lock:
                    if r.status == 200 and r.body in (b"v1\n", b"v2\n"):
                        answers.append((t0, time.time(), r.body))
                    else:
                        errors.append(repr(r))
                if r.header("Connection") == "close":
                    c.close()
                    c = None
            if c is not None:
                c.close()
        ts = [threading.Thread(target=fresh) for _ in range(3)] + \
            [threading.Thread(target=keepalive) for _ in range(2)]
        for t in ts:
            t.start()
        try:
            time.sleep(0.4)
            old = set(d.workers())
            d.write_conf(webd_conf(self.site(root="www2"), workers=2))
            d.signal(signal.SIGHUP)
            self.syslog.wait(rf"webd\[{d.pid}\]: reload done: configuration "
                             r"generation 2 running \(2 workers\)")
            wait_for(lambda: len(d.workers()) == 2 and
                     not (set(d.workers()) & old), 10,
                     what="the old workers to leave")
            gone = time.time()
            time.sleep(0.4)
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(answers), 100)
        bodies = [b for t0, t1, b in answers]
        self.assertIn(b"v1\n", bodies)
        self.assertIn(b"v2\n", bodies)
        # asked after the old generation left: the new root only
        late = [b for t0, t1, b in answers if t0 > gone]
        self.assertTrue(late)
        self.assertEqual(set(late), {b"v2\n"})
        for _ in range(10):
            self.assertEqual(get(self.port, "/index.html").body, b"v2\n")
        print(f"reload under load: {len(answers)} answers, 0 failed, "
              f"{retried[0]} idle keep-alive closes retried")

    def test_slowloris_does_not_stop_normal_clients(self):
        self.port = free_port()
        write(os.path.join(self.dir, "www1", "index.html"), b"normal\n")
        d = self.daemon("webd", webd_conf(self.site(ht="2s"), workers=1))
        d.start()
        wait_port("127.0.0.1", self.port)
        out = os.path.join(self.dir, "slowhttptest.out")
        attack = subprocess.Popen(
            ["slowhttptest", "-H", "-c", "1000", "-r", "200", "-i", "1",
             "-x", "24", "-p", "2", "-l", "6", "-t", "GET",
             "-u", f"http://127.0.0.1:{self.port}/"],
            stdout=open(out, "w"), stderr=subprocess.STDOUT)
        try:
            lat, peak = [], 0
            t0 = time.time()
            while attack.poll() is None and time.time() - t0 < 20:
                peak = max(peak, len([c for c in tcp_conns(self.port)
                                      if c[0] == "ESTAB"]) // 2)
                s = time.time()
                r = get(self.port, "/index.html", timeout=5)
                lat.append(time.time() - s)
                self.assertEqual((r.status, r.body), (200, b"normal\n"))
                time.sleep(0.05)
            attack.wait(20)
        finally:
            if attack.poll() is None:
                attack.kill()
                attack.wait()
        report = re.sub(r"\x1b\[[0-9;]*m", "", open(out).read())
        closed = [int(x) for x in re.findall(r"closed:\s+(\d+)", report)]
        connected = [int(x) for x in
                     re.findall(r"connected:\s+(\d+)", report)]
        lat.sort()
        print(f"slowloris: up to {peak} attack connections at once "
              f"({max(connected, default=0)} by slowhttptest's count), "
              f"{max(closed, default=0)} closed by the header timeout; "
              f"{len(lat)} normal requests, median "
              f"{lat[len(lat) // 2] * 1000:.1f} ms, slowest "
              f"{lat[-1] * 1000:.1f} ms")
        # the attack was real: hundreds of slow heads at once, and the
        # header timeout cut them
        self.assertGreater(peak, 150, report[-2000:])
        self.assertGreater(max(closed, default=0), 100, report[-2000:])
        # and the normal client was served promptly all along
        self.assertGreater(len(lat), 30)
        self.assertLess(lat[len(lat) // 2], 0.05 * SLOW)
        # one dropped SYN (1 s retransmit) or stall is not the server's
        # doing; a worker held by the attack would fail most requests
        self.assertLess(lat[len(lat) * 95 // 100], 0.2 * SLOW)
        self.assertLess(lat[-1], 3 * SLOW)
        self.assertIn("service available:   YES", report)
