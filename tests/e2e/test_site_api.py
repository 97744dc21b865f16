"""The demo site's notes API end to end, through lbd: a round trip over
HTTP and HTTPS, read-your-writes across the two app servers, lbd's
round-robin as its metrics show it, a replica killed and restarted that
catches up, and the whole site stopped and started again with every note
still there.  (And a bug of the notes application: ids used again.)"""
import os
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for                             # noqa: E402
from sitelib import Client, SiteTest                     # noqa: E402

OTHER = {"web1": "web2", "web2": "web1"}
APP = {"web1": "app1", "web2": "app2"}


def all_notes(client, port=None):
    """Every note, following the pages' "next" links."""
    notes, url = [], "/api/notes?limit=100"
    while url:
        r = client.get(url, port=port)
        assert r.status == 200, r
        j = r.json()
        notes += j["notes"]
        url = j["next"]
    return notes


class ApiTest(SiteTest):
    def test_1_roundtrip_http_and_https(self):
        for tls in (False, True):
            c = Client(self.site, tls=tls)
            scheme = "https" if tls else "http"
            page = c.get("/")
            self.assertEqual(page.status, 200)
            self.assertIn(b"<title>notes</title>", page.body)
            self.assertIn(page.served_by, ("web1", "web2"))
            text = f"{scheme} round trip {uuid.uuid4()} \u00e9\u2603 <b>"
            r = c.post_note(text, author=f"{scheme} author")
            self.assertEqual(r.status, 201, r)
            n = r.json()
            self.assertEqual((n["text"], n["author"]),
                             (text, f"{scheme} author"))
            loc = r.header("Location")
            self.assertEqual(loc, f"/api/notes/{n['id']}")
            self.assertIn("appd_lsn", c.cookies)
            # read it back twice: once through each web/app pair
            seen = set()
            for _ in range(2):
                g = c.get(loc)
                self.assertEqual(g.status, 200, g)
                self.assertEqual(g.json(), n)
                seen.add(g.served_by)
            self.assertEqual(seen, {"web1", "web2"})
            self.assertIn(n["id"], [x["id"] for x in
                                    c.get("/api/notes").json()["notes"]])
            d = c.request("DELETE", loc)
            self.assertEqual(d.status, 204, d)
            for _ in range(2):
                self.assertEqual(c.get(loc).status, 404)
        # and the HTTPS listener really is TLS with the demo's certificate
        with socket.create_connection(("127.0.0.1",
                                       self.site.ports["https"])) as s:
            with self.site.tls().wrap_socket(
                    s, server_hostname="127.0.0.1") as t:
                self.assertIn(t.version(), ("TLSv1.2", "TLSv1.3"))
                print(f"HTTPS: {t.version()} {t.cipher()[0]}")

    def test_2_read_your_writes_across_app_servers(self):
        c = Client(self.site, source="127.0.0.2", rate=150)
        misses, same, lsns = [], [], []
        t0 = time.time()
        for i in range(100):
            text = f"ryw {i} {uuid.uuid4()}"
            w = c.post_note(text)
            self.assertEqual(w.status, 201, w)
            lsns.append(int(c.cookies["appd_lsn"]))
            r = c.get(w.header("Location"))
            if r.served_by != OTHER[w.served_by]:
                same.append((i, w.served_by, r.served_by))
            if r.status != 200 or r.json().get("text") != text:
                misses.append((i, w.served_by, r))
        took = time.time() - t0
        # the session's LSN travels to the other app server, which reads
        # from its own database node no older than that
        for i in range(10):
            w = c.post_note(f"ryw whoami {i}")
            self.assertEqual(w.status, 201, w)
            lsn = int(c.cookies["appd_lsn"])
            r = c.get("/api/whoami")
            self.assertEqual(r.served_by, OTHER[w.served_by])
            j = r.json()
            self.assertEqual(j["instance"], APP[r.served_by])
            self.assertEqual(j["db_node"],
                             "db2" if r.served_by == "web2" else "db1")
            self.assertEqual(j["session_lsn"], lsn)
            self.assertGreaterEqual(j["db_lsn"], lsn)
        print(f"read-your-writes: 100 pairs in {took:.1f}s, "
              f"{len(misses)} misses, {len(same)} reads on the writer's "
              f"server; LSN {lsns[0]} -> {lsns[-1]}")
        self.assertEqual(same, [])
        self.assertEqual(misses, [])
        self.assertEqual(lsns, sorted(lsns))
        self.assertGreater(lsns[-1], lsns[0])

    def test_3_round_robin_in_metrics(self):
        def counts():
            return [self.site.metric("lbd_server_requests_total",
                                     backend="webs", server=s)
                    for s in ("web1", "web2")]
        c = Client(self.site, source="127.0.0.3", rate=150)
        before = counts()
        by = {"web1": 0, "web2": 0}
        for _ in range(100):
            r = c.get("/")
            self.assertEqual(r.status, 200)
            by[r.served_by] += 1
        after = counts()
        d = [a - b for a, b in zip(after, before)]
        print(f"round-robin: lbd counted web1 +{d[0]:.0f}, web2 "
              f"+{d[1]:.0f}; X-Served-By {by}")
        self.assertEqual(sum(d), 100)
        self.assertLessEqual(abs(d[0] - d[1]), 1)
        self.assertEqual(d, [by["web1"], by["web2"]])

    def test_4_replica_killed_catches_up(self):
        site = self.site
        web1, web2 = site.ports["web1"], site.ports["web2"]
        c = Client(site, source="127.0.0.4", rate=150)
        old = site.kill9("dbrepd", "db2")
        # the primary goes on taking writes
        ids = []
        for i in range(20):
            w = c.post_note(f"while db2 is down {i}")
            self.assertEqual(w.status, 201, w)
            ids.append(w.json()["id"])
        # what app2 does for a read without a session meanwhile
        r = Client(site).get("/api/whoami", port=web2)
        during = f"{r.status} {r.body[:100]!r}"
        st, out, err = site.rc("dbrepd", "status", "db2")
        self.assertEqual(st, 3, out + err)
        t0 = time.time()
        st, out, err = site.rc("dbrepd", "start", "db2")
        self.assertEqual(st, 0, out + err)
        new = site.pid("dbrepd", "db2")
        self.assertNotIn(new, old)
        primary = Client(site).get("/api/whoami", port=web1).json()
        self.assertEqual(primary["db_node"], "db1")

        def caught_up():
            j = Client(site).get("/api/whoami", port=web2).json()
            return j if j.get("db_node") == "db2" and \
                j["db_lsn"] >= primary["db_lsn"] else None
        j = wait_for(caught_up, 15, step=0.05,
                     what="db2's LSN to reach the primary's")
        took = time.time() - t0
        self.assertEqual(j["instance"], "app2")
        self.assertEqual(j["notes"], primary["notes"])
        # the notes written while it was down are on the replica now
        for i in ids:
            r = Client(site).get(f"/api/notes/{i}", port=web2)
            self.assertEqual(r.status, 200, r)
        line = self.syslog.wait(site.syslog_rx(
            "dbrepd", "db2", r"replication \d+: replicating from db1 .* "
            r"at LSN \d+"))
        print(f"replica: while db2 was down app2 answered {during}; "
              f"restarted, LSN {j['db_lsn']} >= primary's "
              f"{primary['db_lsn']} after {took:.2f}s; "
              f"{line.split(': ', 1)[1]}")

    # A deleted note's id is never given again (AUTOINCREMENT, whose
    # counter dbrepd replicates): a page still showing the deleted note
    # cannot delete a newer one with its button.
    def test_6_note_ids_are_never_reused(self):
        c = Client(self.site, source="127.0.0.5", rate=150)
        w = c.post_note("deleted at once")
        self.assertEqual(w.status, 201, w)
        old = w.json()["id"]
        self.assertEqual(c.request("DELETE", w.header("Location")).status,
                         204)
        w = c.post_note("the next note")
        self.assertEqual(w.status, 201, w)
        print(f"note {old} deleted; the next note got id {w.json()['id']}")
        self.assertGreater(w.json()["id"], old)

    def test_9_site_restart_keeps_every_note(self):
        site = self.site
        c = Client(site, source="127.0.0.5", rate=150)
        for i in range(5):
            self.assertEqual(c.post_note(f"before restart {i}").status, 201)
        before = all_notes(c)
        self.assertGreaterEqual(len(before), 5)
        rc, out = site.stop()
        self.assertEqual(rc, 0, out)
        for name in ("http", "https", "web1", "web2", "db1", "db2"):
            with self.assertRaises(OSError, msg=name):
                socket.create_connection(("127.0.0.1", site.ports[name]),
                                         timeout=1).close()
        self.assertEqual([f for f in os.listdir(site.rundir)
                          if f.endswith(".pid")], [])
        t0 = time.time()
        site.start()
        print(f"site stopped and started again in {time.time() - t0:.1f}s"
              f" with {len(before)} notes")
        # through lbd, and from each app server (app2 reads db2)
        self.assertEqual(all_notes(c), before)
        for web in ("web1", "web2"):
            self.assertEqual(all_notes(c, port=site.ports[web]), before)
        # and a session cookie from before the restart is still honoured
        w = c.post_note("after restart")
        self.assertEqual(w.status, 201, w)
        self.assertGreater(w.json()["id"], max(n["id"] for n in before))
