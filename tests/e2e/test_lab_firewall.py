"""The firewall across hosts (rc.d/firewall, the rulesets labgen.py
writes from the site description): from the client host every internal
port is unreachable, listed port by port (dropped: no answer at all);
every path the site needs works (the public ports, lbd to webd, appd to
dbrepd, replication between the database hosts, the monitoring host to
every metrics port, VRRP between the lb hosts); web2 cannot reach db1's
replication port, nor any host a port it has no business with.  Then the
firewalls are stopped, and each daemon's own allow list must still keep
the client out."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lablib import LabTest                               # noqa: E402

# not on the network at all: no port to probe
UNIX_ONLY = ["lbd's control socket (lbdctl), on each lb host",
             "appd's listener (webd's upstream), on each web host",
             "dbrepd's local socket (dbrepctl as root), on each db host"]


class Firewall(LabTest):
    def internal(self):
        """[(label, target)] of every internal port of every host."""
        out = []
        for h in self.lab.site.hosts:
            for name, port in self.lab.site.internal_ports(h):
                out.append((f"{h.name} {name}", f"{h.addr}:{port}"))
            if h.role == "lb":
                # the public ports on the host's own address (lbd listens
                # on the service address only) and the stats port on the
                # service address
                for p in self.lab.site.service_ports:
                    out.append((f"{h.name} {p} (own address)",
                                f"{h.addr}:{p}"))
        out.append(("service address lbd-stats",
                    f"{self.lab.vip}:{self.lab.port('lbd-stats')}"))
        return out

    def table(self, title, rows, res):
        print(title)
        for label, t in rows:
            print(f"    {label:<32} {t:<20} {res[t]}")
        print(flush=True)

    def test_1_client_reaches_no_internal_port(self):
        rows = self.internal()
        res = self.lab.probe("client", [t for _, t in rows])
        self.table("from the client host (timeout: dropped by the host's "
                   "firewall):", rows, res)
        print("    not on the network: " + "; ".join(UNIX_ONLY))
        self.assertEqual({t: r for t, r in res.items() if r != "timeout"},
                         {})

    def test_2_allowed_paths(self):
        lab, site = self.lab, self.lab.site
        checks = []         # (from, target, result, wanted)
        # everyone: the public ports
        rc, out = lab.curl("client", f"https://{lab.name}/api/whoami", "-f",
                           "--cacert", lab.hostdir("client", "keys",
                                                   "site.crt"),
                           "--resolve", f"{lab.name}:443:{lab.vip}")
        checks.append(("client", f"https://{lab.vip}/api/whoami",
                       "ok" if rc == 0 else out, "ok"))
        res = lab.probe("client", [f"{lab.vip}:80/"], http=True)
        checks += [("client", t, r, "http 200") for t, r in res.items()]
        # the monitoring host: every metrics port
        targets = [f"{h.addr}:{port}{path}" for h in site.hosts
                   for _, port, path in site.metrics_ports(h)]
        res = lab.probe("mon", targets, http=True)
        checks += [("mon", t, r, "http 200") for t, r in res.items()]
        # the lb hosts: webd
        for lb in site.role("lb"):
            res = lab.probe(lb.name, [f"{w.addr}:{lab.port('webd')}/healthz"
                                      for w in site.role("web")], http=True)
            checks += [(lb.name, t, r, "http 200") for t, r in res.items()]
        # the app hosts: dbrepd's clients port, with a real query
        secret = open(os.path.join(lab.state, "keys",
                                   "dbrepd.secret")).read().strip()
        for w in site.role("web"):
            for d in site.role("db"):
                t = f"{d.addr}:{lab.port('dbrepd')}"
                rc, out, err = lab.exec(w.name, "dbrepctl", "-n", f"any={t}",
                                        "-s", secret, "-t", "3000", "query",
                                        "-r", "SELECT 1")
                checks.append((w.name, t + " (dbrepctl query)",
                               "ok" if rc == 0 else (out + err).strip(),
                               "ok"))
        # the database hosts: each other's replication port
        for d in site.role("db"):
            res = lab.probe(d.name, [f"{o.addr}:{lab.port('dbrepd-repl')}"
                                     for o in site.role("db") if o is not d])
            checks += [(d.name, t, r, "open") for t, r in res.items()]
        # VRRP between the lb hosts: one holder, the other a backup (were
        # VRRP dropped, both would hold the address)
        checks.append(("lb2", "VRRP from lb1", str(lab.vip_holder()),
                       "['lb1']"))
        print("allowed paths:")
        for f, t, r, w in checks:
            print(f"    {f:<7} -> {t:<45} {r}")
        print(flush=True)
        self.assertEqual([c for c in checks if c[2] != c[3]], [])

    def test_3_lateral_paths_closed(self):
        lab, site = self.lab, self.lab.site
        P = lab.port
        db1, db2 = lab.addr("db1"), lab.addr("db2")
        cases = {
            "web2": [f"{db1}:{P('dbrepd-repl')}", f"{db2}:{P('dbrepd-repl')}",
                     f"{db1}:{P('dbrepd-metrics')}",
                     f"{lab.addr('web1')}:{P('webd')}",
                     f"{lab.addr('lb1')}:{P('lbd-stats')}"],
            "db1": [f"{lab.addr('web1')}:{P('webd')}",
                    f"{lab.addr('web1')}:{P('appd-status')}"],
            "mon": [f"{lab.addr('web1')}:{P('webd')}", f"{db1}:{P('dbrepd')}",
                    f"{db1}:{P('dbrepd-repl')}"],
            "lb1": [f"{db1}:{P('dbrepd')}",
                    f"{lab.addr('web1')}:{P('webd-metrics')}"],
        }
        bad = {}
        print("lateral paths (timeout: dropped):")
        for frm, targets in cases.items():
            res = lab.probe(frm, targets)
            for t, r in res.items():
                print(f"    {frm:<5} -> {t:<20} {r}")
                if r != "timeout":
                    bad[f"{frm} -> {t}"] = r
        print(flush=True)
        self.assertEqual(bad, {})
        self.assertTrue(site.role("web"))

    def without_firewalls(self):
        lab = self.lab
        for h in lab.site.hosts:
            if h.role in ("lb", "web", "db"):
                lab.rc(h.name, "firewall", "stop")
                self.addCleanup(lab.rc, h.name, "firewall", "start")

    def test_4_daemons_refuse_the_client_without_firewall(self):
        """Each daemon's own allow list: lbd's stats allow, webd's
        peer-allow and metrics-allow, appd's status-allow, dbrepd's allow
        (client and replication ports)."""
        lab = self.lab
        self.without_firewalls()
        P = lab.port
        wanted = {}
        for h in lab.site.role("lb"):
            wanted[f"{h.addr}:{P('lbd-stats')}/metrics"] = "closed"
        for h in lab.site.role("web"):
            wanted[f"{h.addr}:{P('webd')}/"] = "closed"
            wanted[f"{h.addr}:{P('webd-metrics')}/metrics"] = "closed"
            wanted[f"{h.addr}:{P('appd-status')}/metrics"] = "closed"
        for h in lab.site.role("db"):
            wanted[f"{h.addr}:{P('dbrepd')}/"] = "closed"
            wanted[f"{h.addr}:{P('dbrepd-repl')}/"] = "closed"
        res = lab.probe("client", list(wanted), http=True)
        print("from the client, the firewalls stopped (closed: the daemon "
              "closed the connection at once):")
        for t in wanted:
            print(f"    {t:<28} {res[t]}")
        print(flush=True)
        # refused one way or the other: a 403, or closed unanswered
        self.assertEqual({t: r for t, r in res.items()
                          if r not in ("http 403", "closed", "reset")}, {})

    def test_5_dbrepd_metrics_refused_without_firewall(self):
        lab = self.lab
        self.without_firewalls()
        t = f"{lab.addr('db1')}:{lab.port('dbrepd-metrics')}/metrics"
        res = lab.probe("client", [t], http=True)
        print(f"client -> {t}, no firewall: {res[t]}", flush=True)
        self.assertIn(res[t], ("http 403", "closed", "reset"))

    def test_6_dbrepd_replication_refused_to_web2_without_firewall(self):
        lab = self.lab
        self.without_firewalls()
        t = f"{lab.addr('db1')}:{lab.port('dbrepd-repl')}/"
        res = lab.probe("web2", [t], http=True)
        print(f"web2 -> {t}, no firewall: {res[t]}", flush=True)
        self.assertIn(res[t], ("closed", "reset"))
