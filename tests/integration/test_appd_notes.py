"""The notes site on a dbrepd primary and replica: its API through webd
(create, read, list and paginate, delete, the 400, 404, 405 and 415
paths, JSON escaping of quotes, control characters and invalid UTF-8),
its static page, and read-your-writes across two appd instances that
read from different dbrepd nodes, with the replica held back."""
import json
import os
import re
import signal
import sys
import threading
import time
from urllib.parse import quote_from_bytes

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import TOP, children, cmdline, free_port  # noqa: E402
from dbreptest import SECRET, DbrepTest  # noqa: E402
from appdtest import NOTES, Appd, Webd, get  # noqa: E402

WWW = os.path.join(TOP, "appd", "apps", "notes-www")

WEBD = """
workers 1
pidfile "@PIDFILE@"
server "site" default {{
	listen 127.0.0.1:{port}
	root "{www}"
	location "/api/" {{
		proxy apps
	}}
}}
upstream apps {{
{servers}
}}
"""


class Session:
    """A client with the cookie jar a browser would keep."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def ask(self, method, path, body=None, ctype=None, port=None):
        hdrs = []
        if self.cookies:
            hdrs.append(("Cookie", "; ".join(f"{k}={v}" for k, v in
                                             self.cookies.items())))
        if ctype:
            hdrs.append(("Content-Type", ctype))
        r = get(port or self.port, path, method=method, body=body,
                headers=hdrs)
        for c in r.all("Set-Cookie"):
            k, v = c.split(";", 1)[0].split("=", 1)
            self.cookies[k] = v
        return r

    def form(self, path, pairs, port=None):
        body = "&".join(f"{k}={quote_from_bytes(v)}" for k, v in pairs)
        return self.ask("POST", path, body.encode(),
                        "application/x-www-form-urlencoded", port)

    def json(self, path, obj, port=None):
        return self.ask("POST", path, json.dumps(obj).encode(),
                        "application/json", port)


class NotesTest(DbrepTest):
    def setUp(self):
        super().setUp()
        self.db1, self.db2 = self.pair()

    def notes_appd(self, name, nodes, extra=""):
        appextra = (f'database "{nodes}"\n\tdatabase-secret "{SECRET}"\n'
                    f"\tlsn-wait 1500ms\n{extra}")
        # the module is routed at /api/, as in the demo
        a = Appd(self, name=name, module=NOTES, appextra=appextra,
                 extra=f"name {name}\npool static\nworkers 2\n"
                 "trusted-proxy 127.0.0.1\n",
                 routes='route "/api/" app test\n')
        return a.start()

    def webd(self, *apps):
        port = free_port()
        servers = "\n".join(f"\tserver {a.d.name} 127.0.0.1:{a.port}"
                            for a in apps)
        w = Webd.__new__(Webd)
        w.port = port
        w.d = self.daemon("webd", WEBD.format(port=port, www=WWW,
                                              servers=servers), name="webd")
        return w.start()

    def test_api_through_webd(self):
        a = self.notes_appd("app1", f"primary={self.db1.client_addr}")
        w = self.webd(a)
        s = Session(w.port)
        r = s.ask("GET", "/api/notes")
        self.assertEqual((r.status, json.loads(r.body)),
                         (200, {"notes": [], "next": None}))
        r = s.form("/api/notes", [("text", b"first note"),
                                  ("author", b"ann")])
        self.assertEqual(r.status, 201)
        n1 = json.loads(r.body)
        self.assertEqual(r.header("Location"), f"/api/notes/{n1['id']}")
        self.assertEqual((n1["text"], n1["author"]), ("first note", "ann"))
        self.assertRegex(n1["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertIn("appd_lsn", s.cookies)
        r = s.json("/api/notes", {"text": "second, \u00e9t\u00e9"})
        self.assertEqual(r.status, 201)
        n2 = json.loads(r.body)
        self.assertEqual(n2["author"], "anonymous")
        r = s.ask("GET", f"/api/notes/{n1['id']}")
        self.assertEqual(json.loads(r.body), n1)
        # newest first, paginated
        r = s.ask("GET", "/api/notes")
        self.assertEqual([n["id"] for n in json.loads(r.body)["notes"]],
                         [n2["id"], n1["id"]])
        page = json.loads(s.ask("GET", "/api/notes?limit=1").body)
        self.assertEqual([n["id"] for n in page["notes"]], [n2["id"]])
        self.assertEqual(page["next"],
                         f"/api/notes?before={n2['id']}&limit=1")
        page = json.loads(s.ask("GET", page["next"]).body)
        self.assertEqual([n["id"] for n in page["notes"]], [n1["id"]])
        # the 400s, 404s, 405 and 415
        for path in ("/api/notes?limit=0", "/api/notes?limit=500",
                     "/api/notes?limit=x", "/api/notes?before=-1"):
            r = s.ask("GET", path)
            self.assertEqual(r.status, 400, path)
            self.assertIn("error", json.loads(r.body))
        for bad in ([("text", b"")], [("author", b"bob")],
                    [("text", b"x" * 1001)],
                    [("text", b"ok"), ("author", b"a" * 65)]):
            r = s.form("/api/notes", bad)
            self.assertEqual(r.status, 400, bad)
            self.assertIn("error", json.loads(r.body))
        r = s.form("/api/notes", [("text", "\u00e9".encode() * 1000)])
        self.assertEqual(r.status, 201)        # characters, not bytes
        r = s.ask("POST", "/api/notes", b'{"text": ', "application/json")
        self.assertEqual(r.status, 400)
        r = s.ask("POST", "/api/notes", b"text", "text/plain")
        self.assertEqual(r.status, 415)
        for path in ("/api/notes/999999", "/api/notes/abc", "/api/nothing"):
            r = s.ask("GET", path)
            self.assertEqual(r.status, 404, path)
            self.assertIn("error", json.loads(r.body))
        r = s.ask("PUT", "/api/notes", b"")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD, POST")
        # delete
        r = s.ask("DELETE", f"/api/notes/{n1['id']}")
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertEqual(s.ask("DELETE", f"/api/notes/{n1['id']}").status,
                         404)
        self.assertEqual(s.ask("GET", f"/api/notes/{n1['id']}").status, 404)
        who = json.loads(s.ask("GET", "/api/whoami").body)
        self.assertEqual((who["instance"], who["db_node"]), ("app1", "db1"))
        self.assertGreaterEqual(who["db_lsn"], int(s.cookies["appd_lsn"]))
        # the page, from webd
        r = get(w.port, "/")
        self.assertEqual(r.status, 200)
        self.assertIn(b'<script src="notes.js">', r.body)
        r = get(w.port, "/notes.js")
        self.assertIn(b'fetch(path', r.body)
        self.assertIn(b"textContent = n.text", r.body)

    def test_json_escaping_of_stored_text(self):
        a = self.notes_appd("app1", f"primary={self.db1.client_addr}")
        w = self.webd(a)
        s = Session(w.port)
        raw = (b'say "hi" \\ there\nnew line\ttab \x01\x1f\x7f '
               b'bad \xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x82 end')
        r = s.form("/api/notes", [("text", raw), ("author", b'"q"\x02')])
        self.assertEqual(r.status, 201)
        nid = json.loads(r.body)["id"]
        for body in (r.body, s.ask("GET", f"/api/notes/{nid}").body,
                     s.ask("GET", "/api/notes").body):
            text = body.decode("utf-8")          # valid UTF-8
            self.assertFalse(re.search(r"[\x00-\x1f\x7f]", text))
            self.assertIn('say \\"hi\\" \\\\ there\\nnew line\\ttab '
                          '\\u0001\\u001f\\u007f', text)
            doc = json.loads(text)
            note = doc["notes"][0] if "notes" in doc else doc
            self.assertEqual(note["text"], raw.decode("utf-8", "replace"))
            self.assertEqual(note["author"], '"q"\x02')

    def replication_child(self):
        kids = [p for p in children(self.db2.d.pid)
                if "replication" in cmdline(p)]
        self.assertEqual(len(kids), 1)
        return kids[0]

    def test_read_your_writes_across_app_servers(self):
        p, r = self.db1.client_addr, self.db2.client_addr
        app1 = self.notes_appd("app1", f"primary={p}")
        app2 = self.notes_appd("app2", f"primary={p} replica={r}")
        w = self.webd(app1, app2)
        s = Session(app1.port)
        self.assertEqual(s.form("/api/notes", [("text", b"warm")]).status,
                         201)
        self.db2.wait_lsn(self.db1.lsn())
        who = json.loads(s.ask("GET", "/api/whoami", port=app2.port).body)
        self.assertEqual((who["instance"], who["db_node"]), ("app2", "db2"))

        # the replica stops applying; a write lands on the primary
        rep = self.replication_child()
        os.kill(rep, signal.SIGSTOP)
        try:
            r1 = s.form("/api/notes", [("text", b"mine")])
            self.assertEqual(r1.status, 201)
            nid = json.loads(r1.body)["id"]
            lsn = int(s.cookies["appd_lsn"])
            self.assertGreater(lsn, self.db2.lsn())
            # without the session's LSN the replica does not have it
            r = get(app2.port, f"/api/notes/{nid}")
            self.assertEqual(r.status, 404)
            # with it, the read waits for the replica
            out = {}
            t = threading.Thread(target=lambda: out.update(r=s.ask(
                "GET", f"/api/notes/{nid}", port=app2.port)))
            t.start()
            time.sleep(0.4)
            self.assertTrue(t.is_alive())
        finally:
            os.kill(rep, signal.SIGCONT)
        t.join()
        self.assertEqual(out["r"].status, 200)
        self.assertEqual(json.loads(out["r"].body)["text"], "mine")
        who = json.loads(s.ask("GET", "/api/whoami", port=app2.port).body)
        self.assertEqual(who["db_node"], "db2")
        self.assertGreaterEqual(who["db_lsn"], lsn)

        # a replica that stays behind: the read goes to the primary
        os.kill(rep, signal.SIGSTOP)
        try:
            nid = json.loads(s.form("/api/notes",
                                    [("text", b"again")]).body)["id"]
            r = s.ask("GET", f"/api/notes/{nid}", port=app2.port)
            self.assertEqual(r.status, 200)
            who = json.loads(s.ask("GET", "/api/whoami",
                                   port=app2.port).body)
            self.assertEqual(who["db_node"], "db1")
        finally:
            os.kill(rep, signal.SIGCONT)

        # through webd, which alternates app servers (five requests a
        # round, so that each lands on both): always one's own notes
        s = Session(w.port)
        seen = set()
        for i in range(10):
            r = s.form("/api/notes", [("text", b"rr %d" % i)])
            self.assertEqual(r.status, 201)
            nid = json.loads(r.body)["id"]
            r = s.ask("GET", f"/api/notes/{nid}")
            self.assertEqual(r.status, 200)
            lst = json.loads(s.ask("GET", "/api/notes?limit=1").body)
            self.assertEqual(lst["notes"][0]["id"], nid)
            for _ in range(2):
                seen.add(json.loads(s.ask("GET", "/api/whoami").body)[
                    "instance"])
        self.assertEqual(seen, {"app1", "app2"})
