"""appd's CGI/1.1 (RFC 3875): programs in sh and python3 get the
meta-variables and the body, answer with Status, Location (local and
client redirects) and Content-Type, are killed with their children past
the timeout (504), have their stderr logged line by line, and start with
default signal dispositions and nothing blocked."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from appdtest import (AppdTest, SLOW, get, wait_for)  # noqa: E402
from harness import BIN  # noqa: E402

SCRIPTS = {
    "env.py": """#!/usr/bin/env python3
import json, os, sys
body = sys.stdin.buffer.read()
sys.stdout.write("Status: 201 Created\\r\\nContent-Type: application/json\\r\\n"
                 "X-Script: py\\r\\n\\r\\n")
sys.stdout.write(json.dumps({"env": dict(os.environ),
                             "body": body.decode("latin-1"),
                             "cwd": os.getcwd()}))
""",
    "env.sh": """#!/bin/sh
# the shell's own signal state, read by the shell itself (no child)
while read -r k v; do
	case $k in SigBlk:|SigIgn:) sig="$sig $k$v" ;; esac
done < /proc/$$/status
printf 'Content-Type: text/plain\\n\\n'
echo "signals=$sig"
echo "method=$REQUEST_METHOD"
echo "script=$SCRIPT_NAME"
echo "info=$PATH_INFO"
echo "query=$QUERY_STRING"
echo "body=$(cat)"
""",
    "echo.py": """#!/usr/bin/env python3
import sys
data = sys.stdin.buffer.read()
sys.stdout.buffer.write(b"Content-Type: application/octet-stream\\n\\n")
sys.stdout.buffer.write(data)
""",
    "status.sh": """#!/bin/sh
printf 'Status: 404 Nothing Here\\nContent-Type: text/plain\\n\\ngone\\n'
""",
    "local.sh": """#!/bin/sh
printf 'Location: /cgi-bin/env.sh/redirected?x=1\\n\\n'
""",
    "client.sh": """#!/bin/sh
printf 'Location: https://example.com/elsewhere\\n\\n'
""",
    "slow.sh": """#!/bin/sh
sleep 30 &
echo $! > "$DOCUMENT_ROOT/../child.pid"
echo $$ > "$DOCUMENT_ROOT/../script.pid"
sleep 30
printf 'Content-Type: text/plain\\n\\nlate\\n'
""",
    "stderr.sh": """#!/bin/sh
echo "first complaint" >&2
echo "second complaint" >&2
printf 'Content-Type: text/plain\\n\\nok\\n'
""",
    "nohead.sh": """#!/bin/sh
echo "just a body"
""",
    ".hidden.sh": """#!/bin/sh
printf 'Content-Type: text/plain\\n\\nhidden\\n'
""",
}


class CgiTest(AppdTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.dir, 0o1777)       # slow.sh leaves its pids there
        self.cgi = os.path.join(self.dir, "cgi")
        os.makedirs(os.path.join(self.cgi, "sub"))
        os.chmod(self.cgi, 0o755)
        os.chmod(os.path.join(self.cgi, "sub"), 0o755)
        for name, text in SCRIPTS.items():
            p = os.path.join(self.cgi, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o755)
        with open(os.path.join(self.cgi, "notexec.sh"), "w") as f:
            f.write(SCRIPTS["env.sh"])
        os.chmod(os.path.join(self.cgi, "notexec.sh"), 0o644)
        os.link(os.path.join(self.cgi, "env.sh"),
                os.path.join(self.cgi, "sub", "deep.sh"))
        self.a = self.appd(extra="pool static\nworkers 2\n"
                           "trusted-proxy 127.0.0.1\n",
                           routes=f'route "/cgi-bin/" cgi "{self.cgi}" '
                           f'timeout {int(1000 * SLOW)}ms\n').start()

    def test_signals_reset_when_appd_inherits_them_ignored(self):
        """An appd started with signals 32 and 33 ignored (as a CI runner
        did) still runs CGI programs with nothing ignored."""
        a = self.appd(name="appd-ign", wrap=[os.path.join(BIN, "sigign")],
                      extra="pool static\nworkers 1\n",
                      routes=f'route "/cgi-bin/" cgi "{self.cgi}"\n').start()
        # (the wrapper did its part: the master has them ignored)
        ign = [ln.split()[1] for ln in open(f"/proc/{a.d.pid}/status")
               if ln.startswith("SigIgn:")][0]
        self.assertEqual(int(ign, 16) & 0x180000000, 0x180000000)
        r = get(a.port, "/cgi-bin/env.sh")
        self.assertEqual(r.status, 200)
        self.assertIn("signals= SigBlk:0000000000000000 "
                      "SigIgn:0000000000000000", r.body.decode().splitlines())

    def test_python_meta_variables_and_body(self):
        r = get(self.a.port, "/cgi-bin/env.py/extra/p?a=1&b=%20x",
                method="POST", body=b"name=value",
                headers=[("Content-Type", "application/x-www-form-urlencoded"),
                         ("X-Custom", "v1"), ("X-Custom", "v2"),
                         ("Cookie", "a=1"), ("Cookie", "b=2"),
                         ("Proxy", "http://evil:3128"),
                         ("Authorization", "Basic c2VjcmV0"),
                         ("X-Forwarded-For", "203.0.113.9")],
                host="www.example.org:8080")
        self.assertEqual(r.status, 201)
        self.assertEqual(r.header("X-Script"), "py")
        self.assertEqual(r.header("Content-Type"), "application/json")
        out = json.loads(r.body)
        e = out["env"]
        want = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "/cgi-bin/env.py",
            "SCRIPT_FILENAME": os.path.join(self.cgi, "env.py"),
            "PATH_INFO": "/extra/p",
            "PATH_TRANSLATED": self.cgi + "/extra/p",
            "QUERY_STRING": "a=1&b=%20x",
            "REQUEST_URI": "/cgi-bin/env.py/extra/p?a=1&b=%20x",
            "CONTENT_LENGTH": "10",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "appd",
            "SERVER_NAME": "www.example.org",
            "SERVER_PORT": "8080",
            "REMOTE_ADDR": "203.0.113.9",    # the peer is trusted
            "HTTP_X_CUSTOM": "v1, v2",
            "HTTP_COOKIE": "a=1; b=2",
            "HTTP_HOST": "www.example.org:8080",
            "DOCUMENT_ROOT": self.cgi,
        }
        for k, v in want.items():
            self.assertEqual(e.get(k), v, k)
        self.assertNotIn("HTTP_PROXY", e)           # httpoxy
        self.assertNotIn("HTTP_AUTHORIZATION", e)
        self.assertNotIn("HTTP_CONTENT_LENGTH", e)
        self.assertIn("REMOTE_PORT", e)
        self.assertEqual(out["body"], "name=value")
        self.assertEqual(out["cwd"], self.cgi)

    def test_shell_script_and_signal_state(self):
        r = get(self.a.port, "/cgi-bin/env.sh?q=1", method="PUT",
                body=b"some body")
        self.assertEqual(r.status, 200)
        lines = r.body.decode().splitlines()
        self.assertIn("method=PUT", lines)
        self.assertIn("script=/cgi-bin/env.sh", lines)
        self.assertIn("info=", lines)
        self.assertIn("query=q=1", lines)
        self.assertIn("body=some body", lines)
        # nothing blocked, nothing ignored (workers ignore SIGPIPE)
        self.assertIn("signals= SigBlk:0000000000000000 "
                      "SigIgn:0000000000000000", lines)
        r = get(self.a.port, "/cgi-bin/sub/deep.sh/x")
        self.assertIn(b"script=/cgi-bin/sub/deep.sh", r.body)
        self.assertIn(b"info=/x", r.body)
        r = get(self.a.port, "/cgi-bin/env.sh", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_large_body_through_a_program(self):
        data = bytes(range(256)) * 2048           # 512 KiB both ways
        r = get(self.a.port, "/cgi-bin/echo.py", method="POST", body=data)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, data)

    def test_status_and_redirects(self):
        r = get(self.a.port, "/cgi-bin/status.sh")
        self.assertEqual((r.status, r.body), (404, b"gone\n"))
        r = get(self.a.port, "/cgi-bin/local.sh", method="POST", body=b"x")
        self.assertEqual(r.status, 200)
        self.assertIn(b"method=GET", r.body)
        self.assertIn(b"info=/redirected", r.body)
        self.assertIn(b"query=x=1", r.body)
        r = get(self.a.port, "/cgi-bin/client.sh")
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("Location"), "https://example.com/elsewhere")

    def test_errors(self):
        self.assertEqual(get(self.a.port, "/cgi-bin/nothing.sh").status, 404)
        self.assertEqual(get(self.a.port, "/cgi-bin/.hidden.sh").status, 404)
        self.assertEqual(get(self.a.port, "/cgi-bin/sub/").status, 404)
        self.assertEqual(get(self.a.port, "/cgi-bin/notexec.sh").status, 403)
        self.assertEqual(get(self.a.port, "/cgi-bin/nohead.sh").status, 502)
        self.syslog.wait(r"cgi .*nohead.sh: malformed header line")
        # "..": normalized away, the path stays under the route
        r = get(self.a.port, "/cgi-bin/../cgi-bin/status.sh")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b"gone\n")

    def test_stderr_logged_line_by_line(self):
        r = get(self.a.port, "/cgi-bin/stderr.sh")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.syslog.wait(r"appd\[\d+\]: worker \d: cgi .*/stderr.sh: first "
                         r"complaint$")
        self.syslog.wait(r"cgi .*/stderr.sh: second complaint$")

    def wait_program_gone(self):
        """slow.sh and the child it left (their pids in files) dead."""
        pids = []
        for n in ("child.pid", "script.pid"):
            with open(os.path.join(self.dir, n)) as f:
                pids.append(int(f.read()))

        def gone():
            for p in pids:
                try:
                    with open(f"/proc/{p}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            return False
                except OSError:
                    pass
            return True
        wait_for(gone, 5, what="the program's processes to die")

    def test_client_gone_kills_the_program(self):
        """The client (webd, letting go of a request whose client left)
        closes while the program runs: the program and its children are
        killed then, not at the timeout, and the worker serves on."""
        with socket.create_connection(("127.0.0.1", self.a.port)) as c:
            c.sendall(b"GET /cgi-bin/slow.sh HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: os.path.exists(
                os.path.join(self.dir, "script.pid")), 5, what="the program")
            t0 = time.monotonic()
        self.syslog.wait(r"cgi .*/slow.sh: killed, the client closed its "
                         "connection")
        self.assertLess(time.monotonic() - t0, 0.8 * SLOW)
        self.wait_program_gone()
        self.assertEqual(self.a.metrics()["appd_cgi_timeouts_total"], 0)
        self.assertEqual(get(self.a.port, "/cgi-bin/stderr.sh").status, 200)

    def test_timeout_kills_the_program_and_its_children(self):
        t0 = time.monotonic()
        r = get(self.a.port, "/cgi-bin/slow.sh", timeout=10)
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 504)
        self.assertLess(dt, 3 * SLOW)
        self.syslog.wait(r"cgi .*/slow.sh: killed after \d+ ms \(timeout\)")
        self.wait_program_gone()
        self.assertEqual(self.a.metrics()["appd_cgi_timeouts_total"], 1)
        self.assertEqual(get(self.a.port, "/cgi-bin/status.sh").status, 404)
