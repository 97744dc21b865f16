"""dbrepd's allow lists and the conf checks of automatic failover.

allow/deny apply to every TCP listener, replication-allow/-deny and
metrics-allow/-deny replace them for those listeners: a connection from
a source they refuse is closed before a byte is read or sent (no HELLO,
no HTTP answer), logged and counted; the Unix socket keeps its file
permissions.  "failover auto" is refused by `dbrepd -n` (file:line) where
it could not be safe: async durability, on-timeout degrade, no peers, a
quorum larger than the peers, no delay, a delay shorter than two
heartbeats."""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import (  # noqa: E402
    HELLO, SECRET, Client, DbrepTest, free_port)


def refused(addr, source):
    """Connect from <source>: True when the server closes the connection
    without sending anything."""
    h, _, p = addr.rpartition(":")
    s = socket.create_connection((h, int(p)), timeout=5,
                                 source_address=(source, 0))
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    finally:
        s.close()


def http_get(port, source):
    s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                 source_address=(source, 0))
    try:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                return data
            data += d
    except ConnectionResetError:
        return data
    finally:
        s.close()


class Acl(DbrepTest):
    def test_client_listener(self):
        n = self.node("ac1", extra="allow 127.0.0.1\n").start()
        # allowed: the HELLO comes, authentication works
        with Client(("127.0.0.1", n.port)) as c:
            self.assertEqual(c.node, "ac1")
        self.assertTrue(refused(n.client_addr, "127.0.0.2"))
        self.syslog.wait(r"client connection from 127\.0\.0\.2 refused "
                         r"by the allow list")
        # the Unix socket is not concerned
        with n.client() as c:
            c.q("SELECT 1")
        self.assertGreaterEqual(
            n.metrics()["dbrepd_connections_refused_total"], 1)

    def test_deny_first_match(self):
        n = self.node("ac2", extra="deny 127.0.0.2\nallow 127.0.0.0/8\n")
        n.start()
        self.assertTrue(refused(n.client_addr, "127.0.0.2"))
        with Client(("127.0.0.1", n.port)) as c:
            self.assertEqual(c.node, "ac2")
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5,
                                     source_address=("127.0.0.3", 0))
        self.assertGreater(len(s.recv(4096)), 0)      # its HELLO
        s.close()

    def test_replication_listener(self):
        """replication-allow replaces allow on the replication port: a
        replica from 127.0.0.1 streams, a probe from 127.0.0.2 gets
        nothing, and clients from 127.0.0.2 are still welcome."""
        p = self.node("ac3", extra="replication-allow 127.0.0.1\n")
        p.start()
        r = self.node("ac4", role="replica", primary=p.repl).start()
        with p.client() as c:
            c.q("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            c.q("INSERT INTO t VALUES(1)")
        self.converge(p, r)
        self.assertTrue(refused(p.repl, "127.0.0.2"))
        self.syslog.wait(r"replication connection from 127\.0\.0\.2 "
                         r"refused by the replication-allow list")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5,
                                     source_address=("127.0.0.2", 0))
        hdr = s.recv(5)
        self.assertEqual(hdr[4], HELLO)
        s.close()

    def test_metrics_listener(self):
        n = self.node("ac5", extra="metrics-allow 127.0.0.3\n").start()
        self.assertEqual(http_get(n.mport, "127.0.0.1"), b"")
        self.syslog.wait(r"metrics connection from 127\.0\.0\.1 refused "
                         r"by the metrics-allow list")
        body = http_get(n.mport, "127.0.0.3")
        self.assertIn(b"dbrepd_connections_refused_total 1", body)

    def test_allow_covers_metrics(self):
        """Without metrics-allow, allow guards /metrics too."""
        n = self.node("ac6", extra="allow 127.0.0.3\n").start()
        self.assertEqual(http_get(n.mport, "127.0.0.1"), b"")
        self.assertIn(b"200", http_get(n.mport, "127.0.0.3")[:20])

    def conf_check(self, extra, peers=(), want=None):
        n = self.node("cf", peers=peers, extra=extra)
        rc, out = n.d.run("-n")
        if want is None:
            self.assertEqual((rc, out.strip()), (0, "configuration OK"),
                             extra)
        else:
            self.assertEqual(rc, 1, out)
            self.assertRegex(out, r"cf\.conf:\d+: .*" + want)
        return out

    def test_failover_conf_checks(self):
        peer = f"127.0.0.1:{free_port()}"
        out = self.conf_check("failover auto after 2s\n", [peer],
                              "failover auto needs durability quorum")
        print(f"\n{out.strip()}", file=sys.stderr)
        self.conf_check("durability quorum 1 on-timeout degrade\n"
                        "failover auto after 2s\n", [peer],
                        "failover auto needs on-timeout fail")
        self.conf_check("durability quorum 1\nfailover auto after 2s\n",
                        [], "failover auto needs the other nodes as "
                        "\"peer\"")
        self.conf_check("durability quorum 2\nfailover auto after 2s\n",
                        [peer], "durability quorum 2 with 1 peer")
        self.conf_check("durability quorum 1\nfailover auto\n", [peer],
                        "failover auto needs the silence")
        self.conf_check("durability quorum 1\nfailover auto after 300ms\n",
                        [peer], "at least twice the heartbeat")
        self.conf_check("failover manual after 2s\n", [peer],
                        "failover manual takes no options")
        self.conf_check("durability quorum 1\nfailover auto after 2s "
                        "alone\n", [peer, f"127.0.0.1:{free_port()}"],
                        "alone is for a pair of nodes")
        self.conf_check("durability quorum 1 timeout 2s\n"
                        "failover auto after 2s\n", [peer])
        self.conf_check("failover manual\n", [])
        self.conf_check("replication-allow 10.0.0.0/8\n"
                        "metrics-deny 0.0.0.0/0\n", [])
        self.conf_check("metrics-allow 10.0.0.300\n", [], "address")


if __name__ == "__main__":
    import unittest
    unittest.main()
