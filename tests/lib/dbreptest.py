"""Helpers of the dbrepd integration tests (this module has no tests of
its own): a client of dbrepd's wire protocol written from the format at
the top of dbrepd/frame.c, dbrepd nodes with generated confs, and the
independent checks made with the sqlite3 command-line tool."""
import hashlib
import hmac
import os
import pwd
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import (DaemonTest, alive, children, cmdline,  # noqa: E402
                     free_port, kill_tree, wait_for, BIN, SLOW)

cmdline_of = cmdline

SECRET = "test-secret"
HELLO, AUTH, AUTH_OK, ERROR = 1, 2, 3, 4
QUERY, RESULT = 10, 11
QUERY_EPOCH = 0x02      # a QUERY's flag: the client says an epoch it saw
STATUS, PROMOTE, REPOINT, ADMIN_OK, SNAPSHOT = 20, 21, 22, 23, 24
SNAP_BEGIN, SNAP_DATA, SNAP_END = 45, 46, 47

SQLITE_CONSTRAINT = 19
SQLITE_READONLY = 8
SQLITE_FULL = 13
DBREP_EAUTH = 1003
DBREP_EINDETERMINATE = 1005
DBREP_ELSNWAIT = 1006
DBREP_ENOTREPLICABLE = 1007
DBREP_ETOOBIG = 1008
DBREP_EUNAVAIL = 1009    # a leaving worker: not run, ask again


class DbrepError(Exception):
    def __init__(self, code, ext, msg, primary="", lsn=0):
        super().__init__(f"{msg} (code {code})")
        self.code, self.ext, self.msg = code, ext, msg
        self.primary, self.lsn = primary, lsn


class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def take(self, n):
        if self.o + n > len(self.b):
            raise ValueError("short payload")
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def bytes(self):
        return self.take(self.u32())

    def str(self):
        return self.bytes().decode()

    def value(self):
        t = self.u8()
        if t == 0:
            return None
        if t == 1:
            return self.i64()
        if t == 2:
            return struct.unpack(">d", self.take(8))[0]
        if t == 3:
            return self.str()
        if t == 4:
            return bytes(self.bytes())
        raise ValueError(f"bad value tag {t}")


def frame(t, payload=b""):
    return struct.pack(">IB", len(payload) + 1, t) + payload


def pstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def pvalue(v):
    if v is None:
        return b"\0"
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return b"\1" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\2" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"\3" + pstr(v)
    return b"\4" + pstr(bytes(v))


class Result:
    def __init__(self, payload, node):
        r = Reader(payload)
        self.lsn, self.changes, self.rowid = r.u64(), r.i64(), r.i64()
        self.sets = []
        for _ in range(r.u32()):
            cols = [r.str() for _ in range(r.u32())]
            rows = []
            for _ in range(r.u64()):
                rows.append(tuple(r.value() for _ in cols))
            self.sets.append((cols, rows))
        if r.o != len(payload):
            raise ValueError("trailing bytes in RESULT")
        self.node = node

    @property
    def rows(self):
        return self.sets[-1][1] if self.sets else []


class Client:
    """One connection to a dbrepd client port (unix path or (host,
    port)), authenticated when the node asks for it."""

    def __init__(self, addr, secret=SECRET, timeout=20.0):
        if isinstance(addr, str):
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout * SLOW)
            self.s.connect(addr)
        else:
            self.s = socket.create_connection(addr, timeout=timeout * SLOW)
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        t, p = self.recv()
        assert t == HELLO, t
        r = Reader(p)
        self.version, self.role, self.flags = r.u32(), r.u8(), r.u8()
        self.epoch, self.lsn = r.u64(), r.u64()
        self.node, self.pclient, self.prepl = r.str(), r.str(), r.str()
        nonce = r.bytes()
        if self.flags & 1:
            cn = os.urandom(32)
            mac = hmac.new(secret.encode(), b"dbrep client" + nonce + cn,
                           hashlib.sha256).digest()
            self.send(AUTH, pstr(cn) + pstr(mac))
            t, p = self.recv()
            if t == ERROR:
                raise self.error(p)
            assert t == AUTH_OK
            want = hmac.new(secret.encode(), b"dbrep server" + cn + nonce,
                            hashlib.sha256).digest()
            assert Reader(p).bytes() == want, "server proof"

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, t, payload=b""):
        self.s.sendall(frame(t, payload))

    def recv(self):
        while True:
            if len(self.buf) >= 5:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    t = self.buf[4]
                    p = self.buf[5:4 + n]
                    self.buf = self.buf[4 + n:]
                    return t, p
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError("closed")
            self.buf += d

    @staticmethod
    def error(p):
        r = Reader(p)
        code, ext = r.u32(), r.u32()
        code = code - (1 << 32) if code >= 1 << 31 else code
        return DbrepError(code, ext, r.str(), r.str(), r.u64())

    def query_frame(self, stmts, min_lsn=0, wait_ms=0):
        if isinstance(stmts, str):
            stmts = [(stmts, ())]
        p = struct.pack(">IQII", 0, min_lsn, wait_ms, len(stmts))
        for sql, params in stmts:
            p += pstr(sql) + struct.pack(">I", len(params))
            p += b"".join(pvalue(v) for v in params)
        return frame(QUERY, p)

    def query(self, stmts, min_lsn=0, wait_ms=0):
        self.s.sendall(self.query_frame(stmts, min_lsn, wait_ms))
        t, p = self.recv()
        if t == ERROR:
            raise self.error(p)
        assert t == RESULT, t
        return Result(p, self.node)

    def q(self, sql, *params, **kw):
        return self.query([(sql, params)], **kw)

    def admin(self, t, payload=b""):
        self.send(t, payload)
        t, p = self.recv()
        if t == ERROR:
            raise self.error(p)
        assert t == ADMIN_OK, t
        return Reader(p).str()

    def status(self):
        st = {"replicas": {}}
        for line in self.admin(STATUS).splitlines():
            k, _, v = line.partition(" ")
            if k == "replica":
                f = v.split()
                st["replicas"][f[0]] = dict(zip(f[1::2], f[2::2]))
            else:
                st[k] = v
        return st


def sqlite3_cli(path, sql, timeout=30):
    # a lock the node holds a moment (a checkpoint, a snapshot's copy)
    # is waited for, as any client of the database would
    p = subprocess.run(["sqlite3", "-readonly", "-batch", "-cmd",
                        ".timeout 5000", path, sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"sqlite3 {path}: {p.stderr.decode()}")
    return p.stdout.decode(errors="replace")


def integrity(path):
    return sqlite3_cli(path, "PRAGMA integrity_check").strip()


def digest(path):
    """The logical content of a database, dbrepd's own tables left out,
    as the sqlite3 tool dumps it: schema, rows, sqlite_sequence,
    user_version; the lines sorted, as .dump lists a table's rows in
    rowid order and a table without INTEGER PRIMARY KEY has rowids of
    its own on a replica (dbrepd(8))."""
    p = subprocess.run(["sqlite3", "-readonly", "-batch", path, ".dump"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"sqlite3 .dump {path}: {p.stderr.decode()}")
    keep = [ln for ln in p.stdout.decode().splitlines()
            if "_dbrep_" not in ln]
    keep.sort()
    keep.append(sqlite3_cli(path, "PRAGMA user_version").strip())
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()


class Node:
    """A dbrepd with its own conf, database, ports and sockets."""

    def __init__(self, test, name, role="primary", primary=None, peers=(),
                 extra="", workers=2, heartbeat="200ms", timeout="2s"):
        self.test, self.name, self.role = test, name, role
        self.dir = test.dir
        self.port = free_port()
        self.rport = free_port()
        self.mport = free_port()
        self.sock = os.path.join(self.dir, name + ".sock")
        self.db = os.path.join(self.dir, name + ".db")
        self.primary, self.peers = primary, list(peers)
        self.extra, self.workers = extra, workers
        self.heartbeat, self.timeout = heartbeat, timeout
        self.d = test.daemon("dbrepd", self.conf(), name=name)

    @property
    def repl(self):
        return f"127.0.0.1:{self.rport}"

    @property
    def client_addr(self):
        return f"127.0.0.1:{self.port}"

    def conf(self):
        lines = [f"name {self.name}", f"workers {self.workers}",
                 'pidfile "@PIDFILE@"', f'data "{self.db}"',
                 f"role {self.role}",
                 f"listen unix:{self.sock}",
                 f"listen 127.0.0.1:{self.port}",
                 f"replication-listen 127.0.0.1:{self.rport}",
                 f"metrics-listen 127.0.0.1:{self.mport}",
                 f'secret "{SECRET}"', f"heartbeat {self.heartbeat}",
                 f"replication-timeout {self.timeout}", "peer-check 300ms"]
        if self.primary:
            lines.append(f"primary {self.primary}")
        for p in self.peers:
            lines.append(f"peer {p}")
        lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def rewrite(self):
        self.d.write_conf(self.conf())

    def start(self):
        self.d.start()
        wait_for(lambda: os.path.exists(self.sock), 5, what="socket")
        return self

    def client(self, timeout=20.0):
        return Client(self.sock, timeout=timeout)

    def status(self):
        # a worker of the generation a reload replaces answers "leaving,
        # not run" to what it accepted meanwhile: a client asks again
        for i in range(20):
            try:
                with self.client() as c:
                    return c.status()
            except DbrepError as e:
                if e.code != DBREP_EUNAVAIL or i == 19:
                    raise
                time.sleep(0.05)

    def lsn(self):
        return int(self.status()["lsn"])

    def kill9(self):
        # the master stopped first: one that saw its children die would
        # respawn them
        kill_tree(self.d.pid)
        for f in (self.d.pidfile, self.sock):
            try:
                os.unlink(f)
            except OSError:
                pass

    def stop(self):
        self.d.stop(signal.SIGTERM, timeout=15)

    def metrics(self):
        s = socket.create_connection(("127.0.0.1", self.mport), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        body = data.split(b"\r\n\r\n", 1)[1].decode()
        out = {}
        for ln in body.splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                out[k] = float(v)
        return out

    def wait_lsn(self, lsn, timeout=10):
        wait_for(lambda: self.lsn() >= lsn, timeout,
                 what=f"{self.name} at LSN {lsn}")


class DbrepTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.nodes = []
        nobody = pwd.getpwnam("nobody")
        os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)

    def tearDown(self):
        # kill -9, the master first (kill_tree): a master that saw its
        # children die would respawn them
        for n in self.nodes:
            if n.d.pid and alive(n.d.pid):
                n.kill9()
        super().tearDown()

    def node(self, name, **kw):
        n = Node(self, name, **kw)
        self.nodes.append(n)
        return n

    def pair(self, pextra="", rextra="", start=True, **kw):
        p = self.node("db1", extra=pextra, **kw)
        if start:
            p.start()
        r = self.node("db2", role="replica", primary=p.repl, extra=rextra,
                      **kw)
        if start:
            r.start()
            # a quorum's commits wait for streaming replicas only
            if "quorum" in pextra:
                self.wait_streaming(p, "db2")
        return p, r

    def wait_streaming(self, primary, *names, timeout=10):
        """Wait until <primary> streams to each of the replicas <names>.
        A quorum counts only the replicas streaming: a commit sent before
        a replica just started has connected would wait for it, and could
        time out on a busy machine."""
        wait_for(lambda: all(primary.status()["replicas"].get(n, {}).get(
            "connected") == "yes" for n in names), timeout,
            what=f"{primary.name} streaming to {', '.join(names)}")

    def cut_pair(self, names=("db1", "db2"), pextra="", rextra="",
                 replica_peers=True, **kw):
        """A primary and its replica with a fault proxy (faultproxy.py)
        on each way between them: to_p carries the replica's stream (and
        its votes and probes) to the primary, to_r the primary's probes
        to the replica.  Both started, with a table w(id, v); <kw> go to
        both nodes.  Returns (p, r, to_p, to_r)."""
        from faultproxy import FaultProxy
        p = self.node(names[0], extra=pextra, **kw)
        r = self.node(names[1], role="replica", extra=rextra, **kw)
        to_p = FaultProxy(p.repl).start()
        to_r = FaultProxy(r.repl).start()
        self.addCleanup(to_p.stop)
        self.addCleanup(to_r.stop)
        p.peers = [to_r.addr]
        r.primary = to_p.addr
        if replica_peers:
            # (the primary's peer address goes through the cut too: a
            # new primary tells an old one it reaches)
            r.peers = [to_p.addr]
        p.rewrite()
        r.rewrite()
        p.start()
        r.start()
        if "quorum" in pextra:
            self.wait_streaming(p, names[1])
        with p.client() as c:
            c.q("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        return p, r, to_p, to_r

    def converge(self, primary, *replicas, timeout=20):
        """Wait until every replica has the primary's LSN, then compare
        their digests with the primary's (I4)."""
        want = primary.lsn()
        # the last record's LSN and hash; with the log empty, the ones
        # the log was pruned (or a snapshot installed) at
        last = "SELECT coalesce((SELECT lsn || ' ' || hex(hash) FROM " \
            "_dbrep_log ORDER BY lsn DESC LIMIT 1), (SELECT prune_lsn || " \
            "' ' || hex(prune_hash) FROM _dbrep_meta))"
        h = sqlite3_cli(primary.db, last)

        def there(r):
            try:
                return r.lsn() == want and sqlite3_cli(r.db, last) == h
            except (OSError, AssertionError, DbrepError):
                return False    # restarting, or installing a snapshot
        for r in replicas:
            # the same LSN, not past it, and the same chain hash there (a
            # node that held records the primary lacks gets there only
            # through a snapshot)
            try:
                wait_for(lambda: there(r), timeout,
                         what=f"{r.name} at LSN {want}")
            except AssertionError:
                raise AssertionError(
                    f"{r.name} at {sqlite3_cli(r.db, last).strip()}, "
                    f"{primary.name} at {h.strip()}") from None
        self.assertEqual(primary.lsn(), want, "the primary moved on")
        d = digest(primary.db)
        for r in replicas:
            self.assertEqual(digest(r.db), d, f"{r.name} differs from "
                             f"{primary.name}")
        return want

    def assert_refused(self, client, cases):
        """Each (sql, why) of <cases> fails on <client> as not
        replicable (1007), with <why> in the message."""
        for sql, why in cases:
            with self.assertRaises(DbrepError, msg=sql) as e:
                client.q(sql)
            self.assertEqual(e.exception.code, DBREP_ENOTREPLICABLE, sql)
            self.assertIn(why, e.exception.msg, sql)

    def assert_no_snapshot(self, *replicas):
        """The replicas applied every record: none needed a snapshot."""
        for r in replicas:
            self.assertEqual(r.status()["snapshots_installed"], "0",
                             f"{r.name} needed a snapshot")
            self.assertEqual(r.metrics().get("dbrepd_diverged_total", 0), 0)

    def assert_log_chain(self, node):
        """I5: LSNs contiguous, each record's hash chains from the one
        before it (checked here from the stored rows, with hashlib)."""
        out = sqlite3_cli(node.db, "SELECT lsn, epoch, ts, hex(hash), "
                          "hex(body) FROM _dbrep_log ORDER BY lsn")
        meta = sqlite3_cli(node.db, "SELECT prune_lsn, hex(prune_hash) "
                           "FROM _dbrep_meta").strip().split("|")
        prev_lsn, prev = int(meta[0]), bytes.fromhex(meta[1])
        for ln in out.splitlines():
            lsn, ep, ts, h, body = ln.split("|")
            lsn, ep, ts = int(lsn), int(ep), int(ts)
            self.assertEqual(lsn, prev_lsn + 1, "LSN gap")
            want = hashlib.sha256(prev + struct.pack(">QQQ", lsn, ep, ts) +
                                  bytes.fromhex(body)).digest()
            self.assertEqual(want.hex().upper(), h, f"hash at {lsn}")
            prev_lsn, prev = lsn, want
        return prev_lsn


def writer_storm(addr, n, start=0, acked=None, errors=None, table="w",
                 stop=None):
    """Insert rows start..start+n-1 one per transaction; record the ids
    acknowledged."""
    try:
        c = Client(addr, timeout=10)
    except OSError:
        return
    for i in range(start, start + n):
        if stop is not None and stop.is_set():
            break
        try:
            c.q(f"INSERT INTO {table}(id, v) VALUES(?, ?)", i, f"v{i}")
            if acked is not None:
                acked.append(i)
        except DbrepError as e:
            if errors is not None:
                errors.append(e)
        except (OSError, ConnectionError, AssertionError):
            break
    c.close()
