"""dbrepd over TLS: the "tls" block and "listen ... tls" on the client,
replication and metrics ports, replication-tls on the links between the
nodes (a replica's stream, the peers' probes), and the client library's
tls:// nodes (dbrepctl).  Replication converges over TLS; a query goes
through; a plaintext client is refused cleanly and the server lives on;
an untrusted certificate is a clear error naming the node; openssl
s_client sees TLS 1.2 and 1.3 only; the shared secret is still checked
inside TLS; appd's database nodes may be tls:// too."""
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    BIN, SECRET, AUTH, AUTH_OK, ERROR, HELLO, Client, DbrepError,
    DbrepTest, Node, Reader, pstr, wait_for, DBREP_EAUTH, SLOW)
from harness import workdir  # noqa: E402
from appdtest import NOTES, Appd, get  # noqa: E402
from httpc import make_cert  # noqa: E402

TLS_BLOCK = """tls {{
    certificate "{cert}" key "{key}"
}}
"""


class TlsNode(Node):
    """A node whose TCP listeners speak TLS (<tls>: which of client,
    replication, metrics) and whose links to other nodes do when
    <rtls> (a replication-tls line) is given."""

    def __init__(self, test, name, cert, key, tls=("client", "repl",
                 "metrics"), rtls=None, **kw):
        self.cert, self.key, self.tls, self.rtls = cert, key, tls, rtls
        super().__init__(test, name, **kw)

    def conf(self):
        text = super().conf()

        def on(kind):
            return " tls" if kind in self.tls else ""
        text = text.replace(f"listen 127.0.0.1:{self.port}\n",
                            f"listen 127.0.0.1:{self.port}{on('client')}\n")
        text = text.replace(f"replication-listen 127.0.0.1:{self.rport}\n",
                            f"replication-listen 127.0.0.1:{self.rport}"
                            f"{on('repl')}\n")
        text = text.replace(f"metrics-listen 127.0.0.1:{self.mport}\n",
                            f"metrics-listen 127.0.0.1:{self.mport}"
                            f"{on('metrics')}\n")
        text += TLS_BLOCK.format(cert=self.cert, key=self.key)
        if self.rtls:
            text += self.rtls + "\n"
        return text

    def tls_metrics(self, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", self.mport), timeout=5)
        s = ctx.wrap_socket(raw)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        return data.decode(errors="replace")


class TlsClient(Client):
    """The test client of dbreptest over TLS (Python's ssl)."""

    def __init__(self, port, ctx, secret=SECRET, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port),
                                       timeout=timeout * SLOW)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""
        t, p = self.recv()
        assert t == HELLO, t
        r = Reader(p)
        self.version, self.role, self.flags = r.u32(), r.u8(), r.u8()
        self.epoch, self.lsn = r.u64(), r.u64()
        self.node, self.pclient, self.prepl = r.str(), r.str(), r.str()
        nonce = r.bytes()
        assert self.flags & 1, "TCP asks for the secret, TLS or not"
        cn = os.urandom(32)
        mac = hmac.new(secret.encode(), b"dbrep client" + nonce + cn,
                       hashlib.sha256).digest()
        self.send(AUTH, pstr(cn) + pstr(mac))
        t, p = self.recv()
        if t == ERROR:
            raise self.error(p)
        assert t == AUTH_OK


def ctl(*args, nodes, secret=SECRET, timeout=60):
    cmd = [os.path.join(BIN, "dbrepctl"), "-n", nodes, "-s", secret,
           *args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * SLOW)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class DbrepTls(DbrepTest):
    @classmethod
    def setUpClass(cls):
        cls.certs = workdir("dbrepd-certs")
        # the nodes' certificate names their address; another CA's too
        cls.cert, cls.key = make_cert(cls.certs, "node", "ec",
                                      ["IP:127.0.0.1", "db.test"])
        cls.other, cls.other_key = make_cert(cls.certs, "other", "ec",
                                             ["IP:127.0.0.1", "db.test"])
        # the daemons read the key as root; the tests run as root
        os.chmod(cls.certs, 0o755)

    def tls_node(self, name, **kw):
        n = TlsNode(self, name, self.cert, self.key, **kw)
        self.nodes.append(n)
        return n

    def tls_pair(self, rtls=None, pextra="", rextra="", **kw):
        rtls = rtls or f'replication-tls yes ca "{self.cert}"'
        p = self.tls_node("db1", rtls=rtls, extra=pextra, **kw).start()
        r = self.tls_node("db2", role="replica", primary=p.repl, rtls=rtls,
                          extra=rextra, **kw).start()
        return p, r

    def tcp(self, node, ca=None, opts=""):
        return (f"tls://127.0.0.1:{node.port}?ca={ca or self.cert}"
                f"{opts}")

    def s_client(self, port, *args):
        p = subprocess.run(["openssl", "s_client", "-connect",
                            f"127.0.0.1:{port}", "-CAfile", self.cert,
                            "-verify_return_error", *args],
                           input=b"", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30 * SLOW)
        return p.returncode, p.stdout.decode(errors="replace")

    def test_conf(self):
        n = self.tls_node("db1")
        rc, out = n.d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"), out)
        # tls without the block, tls on a unix socket, a missing key,
        # options of replication-tls no, an unreadable CA
        n.d.write_conf(
            'data "/x.db"\nsecret s\n'
            f"listen 127.0.0.1:{n.port} tls\n"
            f"listen unix:{n.sock} tls\n"
            "replication-tls no ca /etc/hosts\n"
            "primary 127.0.0.1:1\n")
        rc, out = n.d.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertIn("listen ... tls needs a \"tls { certificate", out)
        self.assertIn("tls is for TCP listeners", out)
        self.assertIn("replication-tls no takes no options", out)
        n.d.write_conf(
            'data "/x.db"\nsecret s\n'
            f"listen 127.0.0.1:{n.port} tls\n"
            f'tls {{\n  certificate "{self.cert}" key "/nonexistent"\n}}\n'
            'replication-tls yes ca "/nonexistent-ca.pem"\n')
        rc, out = n.d.run("-n")
        self.assertEqual(rc, 1, out)
        self.assertIn("key /nonexistent", out)
        self.assertIn("CA file /nonexistent-ca.pem", out)

    def test_replication_converges(self):
        """A replica streams over TLS (the primary's replication port
        speaks only TLS): the data converge, digests equal, and the
        primary's status shows it connected."""
        p, r = self.tls_pair()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
            for i in range(200):
                c.q("INSERT INTO t(v, b) VALUES(?, ?)", f"row {i}",
                    os.urandom(64 + i))
            c.q("UPDATE t SET v = v || '!' WHERE id % 3 = 0")
            c.q("DELETE FROM t WHERE id % 7 = 0")
        lsn = self.converge(p, r)
        self.assertGreater(lsn, 200)
        st = p.status()
        self.assertEqual(st["replicas"]["db2"]["connected"], "yes")
        self.assertEqual(r.status()["connected"], "yes")
        self.assertEqual(r.status()["snapshots_installed"], "0")
        # a large record over TLS (partial writes of the sender)
        with p.client() as c:
            c.q("INSERT INTO t(v, b) VALUES('big', ?)", os.urandom(3 << 20))
        self.converge(p, r)
        # metrics over TLS: the replica's stream is counted
        text = p.tls_metrics(self.cert)
        self.assertIn("200 OK", text.split("\r\n")[0])
        self.assertRegex(text, r'dbrepd_replica_connected\{replica="db2"\} 1')
        # a plaintext request on the TLS metrics port gets no answer
        with self.assertRaises(OSError):
            s = socket.create_connection(("127.0.0.1", p.mport), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            if not s.recv(65536).startswith(b"HTTP/"):
                raise ConnectionError("no HTTP answer")

    def test_replica_snapshot_over_tls(self):
        """A new replica far behind takes a snapshot through TLS."""
        p = self.tls_node("db1", rtls=f'replication-tls yes ca '
                          f'"{self.cert}"',
                          extra="log-min-records 0\nlog-max-records 20"
                          ).start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
            for i in range(60):
                c.q("INSERT INTO t(v) VALUES(?)", os.urandom(20000))
        wait_for(lambda: int(p.status()["log"].split()[1]) > 2, 10,
                 what="the log pruned")
        r = self.tls_node("db2", role="replica", primary=p.repl,
                          rtls=f'replication-tls yes ca "{self.cert}"'
                          ).start()
        self.converge(p, r)
        self.assertEqual(r.status()["snapshots_installed"], "1")

    def test_untrusted_primary(self):
        """A replica that does not trust the primary's certificate (or
        checks another name) does not replicate, and says why, naming
        the primary's address."""
        p = self.tls_node("db1").start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        r = self.tls_node("db2", role="replica", primary=p.repl,
                          rtls=f'replication-tls yes ca "{self.other}"'
                          ).start()
        self.syslog.wait(rf"replication link to {re.escape(p.repl)}: TLS: "
                         r"the server's certificate does not verify", 10)
        self.assertEqual(r.status()["connected"], "no")
        self.assertEqual(r.lsn(), 0)
        r.stop()
        # the right CA, the wrong name
        self.syslog.mark()
        r2 = self.tls_node("db3", role="replica", primary=p.repl,
                           rtls=f'replication-tls yes ca "{self.cert}" '
                           'name other.test').start()
        self.syslog.wait(rf"replication link to {re.escape(p.repl)}: TLS: "
                         r"the server's certificate does not verify: "
                         r"[Hh]ostname mismatch", 10)
        self.assertEqual(r2.lsn(), 0)
        # and the name it holds: replicates
        r2.stop()
        r3 = self.tls_node("db4", role="replica", primary=p.repl,
                           rtls=f'replication-tls yes ca "{self.cert}" '
                           'name db.test').start()
        self.converge(p, r3)

    def test_plaintext_replica_refused(self):
        """A replica without replication-tls gets no HELLO from a TLS
        replication port, and replicates nothing; the primary lives."""
        p = self.tls_node("db1").start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        # all of them: the second may still be starting
        workers = sorted(p.d.wait_workers(p.workers))
        r = self.tls_node("db2", role="replica", primary=p.repl,
                          timeout="1s", heartbeat="200ms").start()
        self.syslog.wait(rf"replication link to {re.escape(p.repl)}: "
                         r"timed out", 10)
        self.assertEqual(r.lsn(), 0)
        self.assertEqual(sorted(p.d.workers()), workers)
        with p.client() as c:
            c.q("INSERT INTO t VALUES(1)")

    def test_client_query(self):
        """dbrepctl and the Python client query a TLS client port."""
        p, r = self.tls_pair()
        rc, out, err = ctl("query", "CREATE TABLE t(id INTEGER PRIMARY "
                           "KEY, v TEXT)", nodes=self.tcp(p))
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl("query", "INSERT INTO t(v) VALUES(?)", "over tls",
                           nodes=self.tcp(p))
        self.assertEqual(rc, 0, err)
        lsn = p.lsn()
        # a read on the replica, waiting for the write's LSN
        rc, out, err = ctl("query", "-r", "-m", str(lsn), "SELECT v FROM t",
                           nodes=f"primary={self.tcp(p)} "
                           f"replica={self.tcp(r)}")
        self.assertEqual(rc, 0, err)
        self.assertIn("over tls", out)
        self.assertIn("db2", out)
        # -C: every TCP node of the list over TLS with that CA
        rc, out, err = ctl("-C", self.cert, "query", "SELECT count(*) "
                           "FROM t", nodes=f"127.0.0.1:{p.port}")
        self.assertEqual(rc, 0, err)
        # a host name is the name checked: "localhost" is not in the
        # certificate; name= says which is
        rc, out, err = ctl("status", nodes=f"tls://localhost:{p.port}?ca="
                           f"{self.cert}")
        self.assertEqual(rc, 1, out)
        self.assertIn("does not verify", err)
        rc, out, err = ctl("status", nodes=f"tls://localhost:{p.port}?ca="
                           f"{self.cert}&name=db.test")
        self.assertEqual(rc, 0, err)
        self.assertIn("role primary", out)
        # the Python client, TLS 1.3 and 1.2
        for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.minimum_version = ctx.maximum_version = v
            with TlsClient(p.port, ctx) as c:
                self.assertEqual(c.q("SELECT v FROM t").rows,
                                 [("over tls",)])
                self.assertEqual(c.s.version(), v.name.replace("_", "."))

    def test_plaintext_client_refused(self):
        """A client without TLS on a TLS port: no HELLO, a clear error,
        the connection closed; the server and its workers live on."""
        p = self.tls_node("db1", workers=1).start()
        workers = sorted(p.d.wait_workers(1))
        t0 = time.monotonic()
        rc, out, err = ctl("status", nodes=f"127.0.0.1:{p.port}")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"127.0.0.1:{p.port}: no greeting in time (a TLS "
                      "port?", err)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        # raw plaintext bytes (a frame, garbage): closed, nothing back
        # that a plaintext client could read as a frame
        for junk in (b"\0\0\0\x01\x14", b"GET / HTTP/1.0\r\n\r\n",
                     os.urandom(4096)):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(junk)
            data = b""
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            s.close()
            # at most a TLS alert record: content type 21
            self.assertTrue(data == b"" or data[0] == 0x15, data[:16])
        # the server answers TLS clients as before, same worker
        rc, out, err = ctl("status", nodes=self.tcp(p))
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted(p.d.workers()), workers)
        self.assertFalse([ln for ln in self.syslog.lines()
                          if f"dbrepd[{p.d.pid}]: " in ln and
                          "respawning" in ln], "a worker died")
        # a TLS client on a plaintext port is told too
        q = self.node("db9").start()
        rc, out, err = ctl("status", nodes=f"tls://127.0.0.1:{q.port}?ca="
                           f"{self.cert}")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"127.0.0.1:{q.port}: TLS handshake failed", err)
        rc, out, err = ctl("status", nodes=f"127.0.0.1:{q.port}")
        self.assertEqual(rc, 0, err)

    def test_reload_certificate(self):
        """SIGHUP with another certificate: new connections get it (the
        old CA no longer verifies), and the replica follows once its
        replication-tls trusts it."""
        p = self.tls_node("db1").start()
        rc, out, err = ctl("status", nodes=self.tcp(p))
        self.assertEqual(rc, 0, err)
        p.cert, p.key = self.other, self.other_key
        p.rewrite()
        p.d.signal(signal.SIGHUP)
        wait_for(lambda: ctl("status", nodes=self.tcp(p, ca=self.other))[0]
                 == 0 and ctl("status", nodes=self.tcp(p))[0] == 1,
                 10 * SLOW, what="the new certificate served")
        rc, out, err = ctl("status", nodes=self.tcp(p))
        self.assertIn("does not verify", err)

    def test_untrusted_server_client(self):
        """A client that does not trust the certificate: a clear error
        naming the node, and no secret sent (code 1003, EAUTH)."""
        p = self.tls_node("db1").start()
        rc, out, err = ctl("status", nodes=self.tcp(p, ca=self.other))
        self.assertEqual(rc, 1, out)
        self.assertIn(f"127.0.0.1:{p.port}: TLS: the server's certificate "
                      "does not verify", err)
        self.assertIn(f"(code {DBREP_EAUTH}", err)
        # the system's CAs do not know it either
        rc, out, err = ctl("status", nodes=f"tls://127.0.0.1:{p.port}")
        self.assertEqual(rc, 1, out)
        self.assertIn("does not verify", err)
        # verify=no: encrypted, not authenticated by certificate
        rc, out, err = ctl("status", nodes=f"tls://127.0.0.1:{p.port}"
                           "?verify=no")
        self.assertEqual(rc, 0, err)
        # the node is fine
        rc, out, err = ctl("status", nodes=self.tcp(p))
        self.assertEqual(rc, 0, err)

    def test_s_client(self):
        """openssl s_client: TLS 1.3 and 1.2 on every TLS port, 1.1
        refused, the certificate verifies against the CA."""
        p = self.tls_node("db1").start()
        for port in (p.port, p.rport, p.mport):
            rc, out = self.s_client(port, "-tls1_3")
            self.assertEqual(rc, 0, out)
            self.assertIn("TLSv1.3", out)
            self.assertIn("Verify return code: 0 (ok)", out)
            rc, out = self.s_client(port, "-tls1_2")
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"Protocol\s*: TLSv1\.2")
            rc, out = self.s_client(port, "-tls1_1")
            self.assertNotEqual(rc, 0, out)
        # the client port's first bytes inside TLS are the HELLO frame
        ctx = ssl.create_default_context(cafile=self.cert)
        raw = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        head = s.recv(5)
        self.assertEqual(head[4], HELLO)
        s.close()

    def test_wrong_secret_inside_tls(self):
        """TLS does not replace the shared secret: a client with the
        wrong one is refused after the handshake."""
        p = self.tls_node("db1").start()
        rc, out, err = ctl("status", nodes=self.tcp(p), secret="wrong")
        self.assertEqual(rc, 1, out)
        self.assertIn("authentication failed", err)
        self.assertIn(f"(code {DBREP_EAUTH}", err)
        ctx = ssl.create_default_context(cafile=self.cert)
        with self.assertRaises(DbrepError) as e:
            TlsClient(p.port, ctx, secret="wrong")
        self.assertEqual(e.exception.code, DBREP_EAUTH)
        self.syslog.wait(r"authentication failed", 5)
        # a replica with the wrong secret gets nothing, over TLS too
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        r = self.tls_node("db2", role="replica", primary=p.repl,
                          rtls=f'replication-tls yes ca "{self.cert}"')
        r.d.write_conf(r.conf().replace(f'secret "{SECRET}"',
                                        'secret "not-the-secret"'))
        r.start()
        self.syslog.wait(r"replication [0-9.:]+: authentication failed", 10)
        time.sleep(0.5)
        self.assertEqual(r.lsn(), 0)
        # the right one: it does
        ctx = ssl.create_default_context(cafile=self.cert)
        with TlsClient(p.port, ctx) as c:
            self.assertEqual(c.q("SELECT count(*) FROM t").rows, [(0,)])

    def test_peers_over_tls(self):
        """failover auto counts a replica for the quorum only once a peer
        probe authenticated it: over TLS, commits are answered (they
        would fail with 1005 if the probes failed); then the replica,
        told it counts, takes over."""
        fo = ("durability quorum 1 timeout 3s on-timeout fail\n"
              "failover auto after 1s\n")
        rtls = f'replication-tls yes ca "{self.cert}"'
        p = self.tls_node("db1", rtls=rtls, extra=fo)
        r = self.tls_node("db2", role="replica", primary=p.repl, rtls=rtls,
                          extra=fo)
        p.peers, r.peers = [r.repl], [p.repl]
        p.rewrite()
        r.rewrite()
        p.start()
        r.start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            for i in range(20):
                c.q("INSERT INTO t(v) VALUES(?)", f"q{i}")
        self.converge(p, r)
        wait_for(lambda: "takeover yes" in " ".join(
            f"{k} {v}" for k, v in r.status().items() if k != "replicas"),
            10, what="db2 may take over")
        p.kill9()
        wait_for(lambda: r.status().get("role") == "primary" and
                 r.status().get("writable") == "yes", 15 * SLOW,
                 what="db2 promoted")
        rc, out, err = ctl("status", nodes=self.tcp(r))
        self.assertEqual(rc, 0, err)
        self.assertIn("role primary", out)

    def test_appd_database_over_tls(self):
        """appd's "database" nodes written tls://: the notes module
        writes to the primary and reads on the replica, both over TLS
        (the client ports speak nothing else), its worker busy-polling
        for the answers (database-busy-poll) through OpenSSL."""
        p, r = self.tls_pair()
        nodes = f"primary={self.tcp(p)} replica={self.tcp(r)}"
        a = Appd(self, name="app1", module=NOTES,
                 appextra=f'database "{nodes}"\n\tdatabase-secret '
                 f'"{SECRET}"\n\tlsn-wait 1500ms\n'
                 "\tdatabase-busy-poll 1ms\n",
                 extra="name app1\npool static\nworkers 2\n",
                 routes='route "/api/" app test\n').start()
        resp = get(a.port, "/api/notes", method="POST",
                   body=b"text=over%20tls&author=ann",
                   headers=[("Content-Type",
                             "application/x-www-form-urlencoded")])
        self.assertEqual(resp.status, 201, resp.body)
        note = json.loads(resp.body)
        self.converge(p, r)
        resp = get(a.port, f"/api/notes/{note['id']}")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(json.loads(resp.body)["text"], "over tls")
        # the same appd with a CA that does not know the nodes' certificate
        bad = f"primary={self.tcp(p, ca=self.other)}"
        a2 = Appd(self, name="app2", module=NOTES,
                  appextra=f'database "{bad}"\n\tdatabase-secret '
                  f'"{SECRET}"\n',
                  extra="name app2\npool static\nworkers 1\n",
                  routes='route "/api/" app test\n').start()
        resp = get(a2.port, "/api/notes")
        self.assertNotEqual(resp.status, 200, resp.body)
        self.syslog.wait(rf"127\.0\.0\.1:{p.port}: TLS: the server's "
                         r"certificate does not verify", 10)
