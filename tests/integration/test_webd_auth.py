"""webd's HTTP basic authentication (webd/auth.c): auth-basic REALM FILE
in a server or a location, inherited, "off" in a location; a 401 with
the realm's challenge for missing, malformed or wrong credentials, on a
connection kept alive; bcrypt and SHA-crypt hashes from the file; the
path matched decoded and normalized; the user in the access log (the
real syslog); a reload reading a changed file (a password that passed
before no longer does); and the file's errors, with its line, from
webd -n."""
import base64
import os
import re
import signal
import statistics
import time

from harness import Daemon, wait_for
from httpc import BCRYPT_PW, Conn
from httpc import basic_auth as basic
from webdtest import WebdClass, clf, webd_conf, write

# test data: hashes of known passwords
SHA256_PW = "$5$ybrQLwqTQ3b8iaQi$KItaAo.LqgIz1WuTeaLZj1PxsdDLuatFa4ubMQeOY.9"
SHA512_XY = ("$6$abcdefgh$aRpB/OpSXStt4c7hLDCnXWJQBhkxi9uLQKHn8hEQE4s8jdPxIvJNz"
             "L3hxfqehoGGpe7EA2SSOgvf0tgRzgbpr1")     # "x:y"
APR1_PW = "$apr1$abcdefgh$5VEbMkemELfbhC5ck.U.z1"
# bcrypt at cost 11, some 0.1 s a check: "pw"
SLOW_PW = "$2b$11$pd6UMwgtUi6eW3N6LK45.ec9A8ZlsUjztV7JCvQKbLqrBaQEGKn6C"
MD5_PW = "$1$abcdefgh$IQtUouv7y7Q9dRWkQEPCc."

USERS = f"""# who may see /admin/
alice:{SHA512_XY}
bob:{BCRYPT_PW}

carol:{SHA256_PW}
"""


class AuthTest(WebdClass):
    @classmethod
    def make_tree(cls):
        w = os.path.join(cls.dir, "www")
        write(f"{w}/index.html", b"home\n")
        write(f"{w}/admin/secret.txt", b"the secret\n")
        write(f"{w}/admin/index.html", b"admin home\n")
        write(f"{w}/guarded/index.html", b"guarded home\n")
        write(f"{w}/app/index.php", b"<?php secret_source(); ?>\n")
        write(f"{w}/app/index.html", b"app home\n")
        write(f"{cls.dir}/files/private/x.txt", b"private file\n")
        write(f"{cls.dir}/files/open.txt", b"open file\n")
        write(f"{w}/admin/x.css", b"css\n")
        write(f"{w}/admin/public/open.txt", b"open\n")
        write(f"{w}/open/x.txt", b"x\n")
        write(f"{cls.dir}/users", USERS.encode(), mode=0o600)
        write(f"{cls.dir}/users2", f"dave:{BCRYPT_PW}\n".encode(),
              mode=0o600)
        # a blank after the hash, as pasted: not part of it
        # the first user's hash is the fast one: an unknown user is
        # checked against the slowest; "user:hash :comment" holds too
        write(f"{cls.dir}/users3", f"alice:{SHA512_XY}\nzed:{SLOW_PW} \t\n"
              f"yan:{BCRYPT_PW} :a note\n".encode(), mode=0o600)

    @classmethod
    def conf(cls):
        return f"""
access-log syslog
server "main" {{
	listen 127.0.0.1:{cls.port}
	name "main.test"
	root "@DIR@/www"
	location "/admin/" {{
		auth-basic "Admin area" "@DIR@/users"
	}}
	location "/admin/public/" {{
		auth-basic off
	}}
	location "*.css" {{
		expires 1h
	}}
}}
server "locked" {{
	listen 127.0.0.1:{cls.port}
	name "locked.test"
	root "@DIR@/www"
	auth-basic "Locked" "@DIR@/users2"
	location "/open/" {{
		auth-basic off
	}}
	location "/admin/" {{
		header X-Admin "yes"
	}}
}}
server "spa" {{
	listen 127.0.0.1:{cls.port}
	name "spa.test"
	root "@DIR@/www"
	location "/" {{
		try-files "$uri" "$uri/index.html" "/index.html"
	}}
	location "/admin/" {{
		auth-basic "Admin area" "@DIR@/users"
	}}
	location "/slow/" {{
		auth-basic "Slow" "@DIR@/users3"
	}}
	location "/guarded/*.html" {{
		auth-basic "Admin area" "@DIR@/users"
	}}
	location "/app/" {{
		index "index.php" "index.html"
	}}
	location "*.php" {{
		return 403
	}}
	location "/files/" {{
		alias "@DIR@/files"
		try-files "$uri" "/private/x.txt"
	}}
	location "/files/private/" {{
		alias "@DIR@/files/private"
		auth-basic "Admin area" "@DIR@/users"
	}}
}}
"""

    def test_challenge_without_credentials(self):
        with Conn(self.port) as c:
            r = c.request("GET", "/admin/secret.txt", host="main.test")
            self.assertEqual(r.status, 401)
            self.assertEqual(r.header("WWW-Authenticate"),
                             'Basic realm="Admin area", charset="UTF-8"')
            self.assertNotIn(b"secret", r.body)
            # kept alive: the browser asks again on the same connection
            r = c.request("GET", "/admin/secret.txt", [basic("bob", "pw")],
                          host="main.test")
            self.assertEqual((r.status, r.body), (200, b"the secret\n"))

    def test_each_hash_kind_and_wrong_credentials(self):
        for user, pw in (("alice", "x:y"), ("bob", "pw"), ("carol", "pw")):
            for _ in range(2):      # the second from the worker's cache
                r = self.get("/admin/secret.txt", [basic(user, pw)])
                self.assertEqual((r.status, r.body), (200, b"the secret\n"),
                                 user)
        bad = [basic("alice", "x"), basic("alice", "x:y "),
               basic("alice", "X:Y"), basic("bob", "pw2"),
               basic("bob", ""), basic("nobody", "pw"),
               basic("", "pw"), basic("dave", "pw"),
               ("Authorization", "Basic"), ("Authorization", "Basic "),
               ("Authorization", "Basic !!!!"),
               ("Authorization", "Basic " +
                base64.b64encode(b"bob\x00:pw").decode()),
               ("Authorization", "Basic " +
                base64.b64encode(b"bobpw").decode()),
               ("Authorization", "Basic " +
                base64.b64encode(b"bob:pw").decode()[:-1]),
               ("Authorization", "Bearer " +
                base64.b64encode(b"bob:pw").decode())]
        for h in bad:
            r = self.get("/admin/secret.txt", [h])
            self.assertEqual(r.status, 401, h)
            self.assertNotIn(b"secret", r.body, h)
        # the scheme's name in any case, more than one space
        r = self.get("/admin/secret.txt", [(
            "Authorization", "bAsIc   " +
            base64.b64encode(b"bob:pw").decode())])
        self.assertEqual(r.status, 200)

    def test_paths_decoded_and_normalized(self):
        for path in ("/admin/secret.txt", "/%61dmin/secret.txt",
                     "/x/../admin/secret.txt", "//admin/secret.txt",
                     "/admin/public/../secret.txt", "/admin/"):
            r = self.get(path)
            self.assertEqual(r.status, 401, path)
        # a pattern location does not open the prefix's guard
        r = self.get("/admin/x.css")
        self.assertEqual((r.status, r.header("WWW-Authenticate")),
                         (401, 'Basic realm="Admin area", charset="UTF-8"'))
        r = self.get("/admin/x.css", [basic("bob", "pw")])
        self.assertEqual((r.status, r.body), (200, b"css\n"))
        self.assertEqual(r.header("Cache-Control"), "max-age=3600")
        # a location that says off, and the rest of the site
        self.assertEqual(self.get("/admin/public/open.txt").body, b"open\n")
        self.assertEqual(self.get("/").body, b"home\n")

    def test_try_files_keeps_the_candidates_guards(self):
        # "/admin" is location "/"'s, but "$uri/index.html" names
        # /admin/index.html, which is location "/admin/"'s
        r = self.get("/admin", host="spa.test")
        self.assertEqual((r.status, r.header("WWW-Authenticate")),
                         (401, 'Basic realm="Admin area", charset="UTF-8"'))
        self.assertNotIn(b"admin home", r.body)
        r = self.get("/admin", [basic("bob", "pw")], host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"admin home\n"))
        # what is not guarded still falls through to the last entry
        r = self.get("/no/such/page", host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"home\n"))
        r = self.get("/open/x.txt", host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"x\n"))
        # a path from the root, under an alias: the alias's folder
        r = self.get("/files/open.txt", host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"open file\n"))
        r = self.get("/files/none", host="spa.test")
        self.assertEqual(r.status, 401)
        self.assertNotIn(b"private", r.body)
        r = self.get("/files/none", [basic("bob", "pw")], host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"private file\n"))

    def test_index_files_keep_their_location(self):
        # /guarded/ is location "/"'s; its index, "/guarded/*.html"'s
        r = self.get("/guarded/", host="spa.test")
        self.assertEqual(r.status, 401)
        self.assertNotIn(b"guarded home", r.body)
        r = self.get("/guarded/", [basic("bob", "pw")], host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"guarded home\n"))
        # index.php is "*.php"'s, which does not serve files: passed
        # over, never sent as text
        r = self.get("/app/", host="spa.test")
        self.assertEqual((r.status, r.body), (200, b"app home\n"))
        self.assertEqual(self.get("/app/index.php", host="spa.test").status,
                         403)

    def test_two_authorization_fields_refused(self):
        good, bad = basic("bob", "pw"), basic("bob", "wrong")
        for hs in ([good, bad], [bad, good], [good, good]):
            r = self.get("/admin/secret.txt", hs)
            self.assertEqual(r.status, 400, hs)
            self.assertNotIn(b"secret", r.body)

    def test_unknown_user_costs_a_hash(self):
        def took(user, pw):
            t = time.monotonic()
            r = self.get("/slow/x", [basic(user, pw)], host="spa.test")
            self.assertEqual(r.status, 401)
            return time.monotonic() - t
        # the blank after zed's hash was not taken for part of it
        r = self.get("/slow/x", [basic("zed", "pw")], host="spa.test")
        self.assertEqual(r.status, 404)
        r = self.get("/slow/x", [basic("yan", "pw")], host="spa.test")
        self.assertEqual(r.status, 404)
        wrong = statistics.median(took("zed", "x%d" % i) for i in range(3))
        unknown = statistics.median(took("nobody%d" % i, "pw")
                                    for i in range(3))
        self.assertGreater(wrong, 0.03)
        self.assertGreater(unknown, wrong / 2, (unknown, wrong))

    def test_server_auth_inherited_and_off(self):
        r = self.get("/", host="locked.test")
        self.assertEqual((r.status, r.header("WWW-Authenticate")),
                         (401, 'Basic realm="Locked", charset="UTF-8"'))
        r = self.get("/admin/secret.txt", host="locked.test")
        self.assertEqual((r.status, r.header("X-Admin")), (401, "yes"))
        # the server's users, not the other server's
        r = self.get("/admin/secret.txt", [basic("bob", "pw")],
                     host="locked.test")
        self.assertEqual(r.status, 401)
        r = self.get("/admin/secret.txt", [basic("dave", "pw")],
                     host="locked.test")
        self.assertEqual((r.status, r.body), (200, b"the secret\n"))
        self.assertEqual(self.get("/open/x.txt", host="locked.test").status,
                         200)

    def test_user_in_the_access_log(self):
        self.syslog.mark()
        self.get("/admin/secret.txt?who=alice", [basic("alice", "x:y")])
        self.get("/admin/secret.txt?who=anon")
        self.get("/admin/secret.txt?who=spaced", [basic("a b\"c", "pw")])
        def logged():
            got = [ln for ln in self.syslog.lines()
                   if re.search(r"webd\[\d+\]: main .*who=", ln)]
            return got if len(got) >= 3 else None
        lines = {}
        for ln in wait_for(logged, 5, what="three access-log lines"):
            f = clf(ln)
            lines[f["request"].split("who=")[1].split()[0]] = f
        self.assertEqual((lines["alice"]["user"], lines["alice"]["status"]),
                         ("alice", "200"))
        self.assertEqual((lines["anon"]["user"], lines["anon"]["status"]),
                         ("-", "401"))
        # as sent (nginx's $remote_user), escaped: one field
        self.assertEqual(lines["spaced"]["user"], "a\\x20b\\x22c")

    def test_reload_reads_the_file_again(self):
        path = os.path.join(self.dir, "users")
        try:
            self.assertEqual(self.get("/admin/secret.txt",
                                      [basic("carol", "pw")]).status, 200)
            write(path, f"carol:{SHA512_XY}\n".encode(), mode=0o600)
            self.reload()
            # carol's old password passed a moment ago, and is cached
            # under the old hash: no more
            self.assertEqual(self.get("/admin/secret.txt",
                                      [basic("carol", "pw")]).status, 401)
            self.assertEqual(self.get("/admin/secret.txt",
                                      [basic("carol", "x:y")]).status, 200)
            self.assertEqual(self.get("/admin/secret.txt",
                                      [basic("bob", "pw")]).status, 401)
        finally:
            write(path, USERS.encode(), mode=0o600)
            self.reload()

    def reload(self):
        self.syslog.mark()
        self.d.signal(signal.SIGHUP)
        ln = self.syslog.wait(rf"webd\[{self.d.pid}\]: (reload done|reload "
                              r"failed)", 20)
        self.assertIn("reload done", ln)
        self.d.wait_workers(self.WORKERS)

    def test_errors_name_the_file_and_line(self):
        d = Daemon("webd", "", self.dir, name="bad")
        users = os.path.join(self.dir, "bad-users")
        p = d.conf_path

        def conf(line):
            return webd_conf(f"""server "a" {{
	listen 127.0.0.1:1
	root "/"
	{line}
}}""")
        cases = [
            (f"alice:{SHA512_XY}\nbob:{APR1_PW}\n",
             f'auth-basic "r" "{users}"',
             f"{users}:2: user bob: Apache's own MD5 ($apr1$), which "
             "crypt(3) does not check: make it again with htpasswd -B"),
            (f"carol:{MD5_PW}\n", f'auth-basic "r" "{users}"',
             f"{users}:1: user carol: a legacy hash (DES or MD5 crypt), too "
             "weak"),
            ("dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
             f'auth-basic "r" "{users}"',
             f"{users}:1: user dave: an unsalted digest"),
            ("eve:plain\n", f'auth-basic "r" "{users}"',
             f"{users}:1: user eve: not a hash crypt(3) knows"),
            ("# nobody\n\n", f'auth-basic "r" "{users}"',
             f"auth-basic user file {users} has no users"),
            ("nocolon\n", f'auth-basic "r" "{users}"',
             f'{users}:1: not "user:hash"'),
            (f"bob:{BCRYPT_PW}\nbob:{BCRYPT_PW}\n",
             f'auth-basic "r" "{users}"', f"{users}:2: user bob twice"),
            (USERS, f'auth-basic "r" "{users}.missing"',
             f"auth-basic user file {users}.missing: No such file or "
             "directory"),
            ("x" * 1000 + f":{BCRYPT_PW}\n", f'auth-basic "r" "{users}"',
             f"{users}:1: line too long"),
            ("a\x00b:x\n", f'auth-basic "r" "{users}"',
             f"{users}:1: a NUL byte"),
            (USERS, 'auth-basic "r"',
             "auth-basic needs a realm and a user file, or off"),
            (USERS, f'auth-basic "a \\"quoted\\" realm" "{users}"',
             'auth-basic realm "a "quoted" realm": text without quotes'),
        ]
        for text, line, msg in cases:
            write(users, text.encode(), mode=0o600)
            d.write_conf(conf(line))
            rc, out = d.run("-n")
            self.assertEqual(rc, 1, (line, out))
            n = next(i for i, x in enumerate(open(p).read().splitlines(), 1)
                     if "auth-basic" in x)
            self.assertIn(f"{p}:{n}: {msg}", out, text)
        # the longest line, with its newline or without one at the end
        long = "y" * (1023 - 1 - len(BCRYPT_PW))
        for text in (f"{long}:{BCRYPT_PW}\n", f"{long}:{BCRYPT_PW}",
                     USERS):
            write(users, text.encode(), mode=0o600)
            d.write_conf(conf(f'auth-basic "r" "{users}"'))
            rc, out = d.run("-n")
            self.assertEqual(rc, 0, out)
