"""Every daemon of the demo site reloaded (rc.d/DAEMON reload INSTANCE,
one after the other, in the site's order) while clients keep reading and
writing notes through lbd over HTTP and HTTPS: zero failed requests, a
"reload done" line in syslog from each master, the same masters after,
and new workers.

Two kinds of failure were seen there, both writes (POSTs) sent on a kept
connection that a reloading server closed at that very moment: tests 2
and 4 make each race deterministic (expected failures: bugs in the C
code), and test 3 runs the first one with a GET, which lbd retries."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import alive, wait_for                      # noqa: E402
from sitelib import Client, Loop, SiteTest               # noqa: E402


def sock_queued(pid):
    """Whether a unix stream socket of process pid has bytes waiting to
    be read (ss's Recv-Q)."""
    out = subprocess.run(["ss", "-xnp"], stdout=subprocess.PIPE,
                         text=True).stdout
    for ln in out.splitlines():
        f = ln.split()
        if len(f) > 2 and f[1] == "ESTAB" and f"pid={pid}," in ln and \
                f[2].isdigit() and int(f[2]) > 0:
            return True
    return False


ORDER = [("dbrepd", "db1"), ("dbrepd", "db2"), ("appd", "app1"),
         ("appd", "app2"), ("webd", "web1"), ("webd", "web2"),
         ("lbd", "lbd")]
ROUNDS = 3


def reader(client, i):
    r = client.get("/api/notes?limit=5")
    if r.status != 200:
        return f"GET {r.status} {r.body[:300]!r}", r.served_by
    r.json()["notes"]
    return None, r.served_by


def writer(client, i):
    """Write a note, read it back (on the other app server), delete it
    every other time."""
    text = f"reload {i} {uuid.uuid4()}"
    w = client.post_note(text)
    if w.status != 201:
        return f"POST {w.status} {w.body[:300]!r}", w.served_by
    r = client.get(w.header("Location"))
    if r.status != 200 or r.json()["text"] != text:
        return f"read back {r.status} {r.body[:300]!r}", r.served_by
    if i % 2:
        d = client.request("DELETE", w.header("Location"))
        if d.status != 204:
            return f"DELETE {d.status} {d.body[:300]!r}", d.served_by
    return None, r.served_by


def page(client, i):
    r = client.get("/notes.js", tls=True)
    if r.status != 200 or b"notes.js" not in r.body:
        return f"GET /notes.js {r.status}", r.served_by
    return None, r.served_by


def known_bug(f):
    """A failure of a bug that test_2 or test_4 reproduces: lbd's own 502
    (no X-Served-By) for a POST (test_2), or appd's 503 for a query that
    a draining dbrepd worker dropped (test_4)."""
    lbd502 = f[2].startswith("POST 502 b'502 Bad Gateway\\n'") and \
        f[3] is None
    dropped = " 503 " in f[2] and "database unavailable" in f[2] and \
        ("connection lost after the request was sent" in f[2] or
         "Connection reset by peer" in f[2])
    return lbd502 or dropped


class ReloadTest(SiteTest):
    def test_1_reload_every_daemon_under_load(self):
        """Three rounds, every daemon of the site in each."""
        site = self.site
        loops = [Loop(site, "127.0.0.10", reader, rate=60),
                 Loop(site, "127.0.0.11", writer, rate=60),
                 Loop(site, "127.0.0.12", page, rate=60)]
        for lp in loops:
            lp.start()
            self.addCleanup(lp.stop)
        wait_for(lambda: all(len(lp.log) >= 5 for lp in loops), 5,
                 what="the client loops")
        took = {}
        gen = {}
        for rnd in range(ROUNDS):
            for daemon, inst in ORDER:
                # traffic in flight on every tier before each reload
                n = [len(lp.log) for lp in loops]
                wait_for(lambda: all(len(lp.log) >= k + 4
                                     for lp, k in zip(loops, n)), 10,
                         what="requests between reloads")
                master = site.pid(daemon, inst)
                old = [p for p in site.procs(daemon, inst) if p != master]
                t0 = time.time()
                st, out, err = site.rc(daemon, "reload", inst)
                self.assertEqual(st, 0, out + err)
                self.assertIn(f"reloading (pid {master})", out)
                gen[inst] = gen.get(inst, 1) + 1
                self.syslog.wait(rf"{daemon}\[{master}\]: reload done: "
                                 rf"configuration generation {gen[inst]} "
                                 r"running", 10)
                wait_for(lambda: not any(alive(p) for p in old), 10,
                         what=f"{daemon} {inst}'s old processes to leave")
                took.setdefault(inst, []).append(time.time() - t0)
                self.assertEqual(site.pid(daemon, inst), master)
                new = [p for p in site.procs(daemon, inst) if p != master]
                self.assertTrue(new)
                self.assertFalse(set(new) & set(old))
        # a little more traffic on the new generation of everything
        n = [len(lp.log) for lp in loops]
        wait_for(lambda: all(len(lp.log) >= k + 10
                             for lp, k in zip(loops, n)), 10,
                 what="requests after the reloads")
        for lp in loops:
            lp.stop()
        fails = [f for lp in loops for f in lp.failures()]
        total = sum(len(lp.log) for lp in loops)
        # POSTs sent on a connection that a reloading server closed (about
        # 1 webd or dbrepd reload in 10): test_2's and test_4's bugs, not
        # counted here (they would make this test fail at random)
        known = [f for f in fails if known_bug(f)]
        fails = [f for f in fails if not known_bug(f)]
        print(f"reloads under load: {total} client turns (reads, "
              f"write+read+delete, HTTPS), {len(fails)} failed, and "
              f"{len(known)} lost to the bugs of tests 2 and 4 "
              f"{[f[2][:40] for f in known]}; "
              f"{ROUNDS} reloads of each daemon, the slowest took " +
              ", ".join(f"{k} {max(v):.2f}s" for k, v in took.items()))
        self.assertEqual(fails, [])
        # both web servers still in the rotation: over the loops together,
        # since one loop's turns can fall on the same server's turn for a
        # while (the loops run in step, lbd rotates over all requests)
        self.assertEqual({x[3] for lp in loops for x in lp.log[-10:]
                          if x[2] is None}, {"web1", "web2"})

    def closed_keepalive(self, method):
        """Send a request to lbd at the moment the web servers close the
        idle connections lbd keeps to them: lbd's workers are stopped
        (SIGSTOP) while the request comes on a client connection they
        already watch and while both webd reload, whose old workers close
        their idle connections; once the workers go on, they read the
        request before they see those connections closed."""
        site = self.site
        c = http.client.HTTPConnection("127.0.0.1", site.ports["http"],
                                       timeout=10,
                                       source_address=("127.0.0.13", 0))
        self.addCleanup(c.close)
        # a connection from this lbd worker to each web server, now idle
        by = set()
        for _ in range(2):
            c.request("GET", "/api/notes?limit=1")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            by.add(r.getheader("X-Served-By"))
        self.assertEqual(by, {"web1", "web2"})
        workers = site.workers("lbd", "lbd")
        self.assertEqual(len(workers), 2)

        def cont():
            for w in workers:
                try:
                    os.kill(w, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.addCleanup(cont)
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        if method == "POST":
            c.request("POST", "/api/notes", json.dumps({"text": "race"}),
                      {"Content-Type": "application/json"})
        else:
            c.request(method, "/api/notes?limit=1")
        for inst in ("web1", "web2"):
            master = site.pid("webd", inst)
            old = [p for p in site.procs("webd", inst) if p != master]
            st, out, err = site.rc("webd", "reload", inst)
            self.assertEqual(st, 0, out + err)
            wait_for(lambda: not any(alive(p) for p in old), 10,
                     what=f"webd {inst}'s old workers to leave")
        cont()
        r = c.getresponse()
        body = r.read()
        print(f"{method} on a kept-alive connection webd closed: "
              f"{r.status} {body[:40]!r}")
        return r, body

    # BUG (lbd, common/proxy.c): a POST that lbd sends on a reused
    # keep-alive connection to webd, which webd closed at that moment (its
    # old workers leaving after a reload), is answered 502 by lbd ("upstream
    # write failed" / "server reset before answering"): pr_retry_or_fail()
    # never tries a non-idempotent request again, even when nothing of it
    # reached the server, and uc_take_idle()'s 2 s freshness rule does not
    # help against a close at any age.  Under load: 1 webd reload in ~10.
    def test_2_post_lbd_to_webd_closed_by_reload(self):
        r, body = self.closed_keepalive("POST")
        self.assertEqual(r.status, 201, body)

    def test_3_get_lbd_to_webd_closed_by_reload(self):
        """The control of test_2: the same race with a GET, which lbd
        sends again on a new connection."""
        r, body = self.closed_keepalive("GET")
        self.assertEqual(r.status, 200, body)
        self.assertIn("notes", json.loads(body))

    def db_drain_race(self, method, text):
        """A request that appd app1 sends to dbrepd db1 on its kept
        connection at the moment db1's old workers leave after a reload:
        they are stopped (SIGSTOP) while db1 reloads (their SIGTERM waits)
        and while the request comes; once they go on, they drain."""
        site = self.site
        c = Client(site, source="127.0.0.14")
        web1 = site.ports["web1"]
        for _ in range(3):      # app1's workers hold connections to db1
            self.assertEqual(c.post_note("warm", port=web1).status, 201)
        workers = site.workers("dbrepd", "db1")
        self.assertEqual(len(workers), 2)

        def cont():
            for w in workers:
                try:
                    os.kill(w, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.addCleanup(cont)
        master = site.pid("dbrepd", "db1")
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        st, out, err = site.rc("dbrepd", "reload", "db1")
        self.assertEqual(st, 0, out + err)
        self.syslog.wait(rf"dbrepd\[{master}\]: reload done", 10)
        res = []
        t = threading.Thread(target=lambda: res.append(c.request(
            method, "/api/notes" if method == "POST" else
            "/api/notes?limit=1", {"text": text} if method == "POST"
            else None, port=web1)))
        t.start()
        # the query waits in the stopped worker's socket
        wait_for(lambda: any(sock_queued(w) for w in workers), 5,
                 what="app1's query in a db1 worker's socket")
        cont()
        t.join(15)
        self.assertTrue(res, "no answer")
        wait_for(lambda: not any(alive(w) for w in workers), 10,
                 what="db1's old workers to leave")
        print(f"{method} sent by appd on a connection dbrepd was "
              f"draining: {res[0]!r}")
        return res[0]

    # BUG (dbrepd, dbrepd/server.c): server_drain() (a worker leaving after
    # a reload or at a stop) closes every idle connection whose user-space
    # input buffer is empty, without reading what the kernel already holds
    # for it: a query that appd sent at that moment is dropped unread, and
    # appd answers 503 "connection lost after the request was sent: its
    # outcome is unknown".  Under load: about 1 db1 reload in 10 loses a
    # write.  A read can fail too (503 "Connection reset by peer"): the
    # client library (dbrepd/client.c dbrep_exec()) tries a lost read on the
    # next node only, never on a new connection to the same node, and
    # app1's next node is db1 again, through a connection the same drain
    # closes (whether it is seen closed in time is a race).
    def test_4_post_appd_to_dbrepd_closed_by_reload(self):
        text = f"drain race {uuid.uuid4()}"
        r = self.db_drain_race("POST", text)
        # the note was never written (the query was dropped unread)
        notes = Client(self.site).get("/api/notes?limit=20",
                                      port=self.site.ports["web1"])
        print(f"the note is {'' if text in notes.body.decode() else 'not '}"
              "in the database")
        self.assertEqual(r.status, 201, r)
