#!/usr/bin/env python3
"""labgen.py: every host's configuration, from one site description.

	labgen.py [-s SITE] conf LABDIR [--top DIR] [--build DIR]
	labgen.py [-s SITE] sample OUTDIR
	labgen.py [-s SITE] shell
	labgen.py [-s SITE] check

SITE is tests/e2e/hosts/site.txt unless given (its format is written at
its top).  "conf" writes, for each host, LABDIR/HOST/conf/: the daemons'
confs (lbd.conf, webd.conf, appd.conf, dbrepd.conf, from the templates
in templates/ beside this file), keepalived.conf, firewall.nft (the
nftables ruleset rc.d/firewall loads) and site (the list rc.d/site
starts, in order), with the paths of the lab that tests/e2e/lab.sh
makes: LABDIR/HOST/{run,db,tmp,keys}.  "sample" writes the same for the
paths of an installed site (/etc/lbd-suite, /run/lbd-suite,
/var/db/dbrepd), as shipped in samples/.  "shell" prints the hosts for
lab.sh, as shell assignments.  "check" parses SITE and says what is
wrong with it."""
import argparse
import ipaddress
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
SITE = os.path.join(HERE, "site.txt")

ROLES = ("db", "web", "lb", "monitor", "client")	# in start order
PORTS = ("lbd-stats", "webd", "webd-metrics", "appd-status", "dbrepd",
         "dbrepd-repl", "dbrepd-metrics")
DEFAULTS = {
    "server-name": "www.example.test",
    "interface": "eth0",
    "vrrp-id": "10",
    "vrrp-advert": "1",
    "check-interval": "1",
    "check-fall": "2",
    "check-rise": "2",
    "durability": "quorum 1 timeout 2s on-timeout fail",
    "db-timeout": "2s",
    "db-failover": "manual",
}
# dbrepd keywords that a dbrepd being written may not have yet: the lab
# asks the binary (dbrepd_keywords), the samples have them all
DBREPD_NEW = ("replication-allow", "metrics-allow", "failover")
# the daemons each role runs, in start order (rc.d/site)
DAEMONS = {
    "lb": ("firewall", "lbd", "keepalived"),
    "web": ("firewall", "appd", "webd"),
    "db": ("firewall", "dbrepd"),
    "monitor": ("firewall",),
    "client": ("firewall",),
}
NAME_RX = re.compile(r"^[a-z][a-z0-9]{0,9}$")	# "p-NAME" is an interface


class SiteError(Exception):
    pass


class Host:
    def __init__(self, name, addr, role, opts, line):
        self.name, self.addr, self.role = name, addr, role
        self.opts = opts
        self.line = line

    def __repr__(self):
        return f"<{self.name} {self.addr} {self.role}>"


class Site:
    """The parsed description: hosts in the file's order, the LAN, the
    guard, the service address and ports, the daemons' ports and the
    settings."""

    def __init__(self, path=SITE):
        self.path = path
        self.hosts = []
        self.ports = {}
        self.settings = dict(DEFAULTS)
        self.lan = self.guard = self.vip = None
        self.service_ports = []
        errors = []
        with open(path) as f:
            for n, raw in enumerate(f, 1):
                words = raw.split("#", 1)[0].split()
                if not words:
                    continue
                try:
                    self._statement(words, n)
                except SiteError as e:
                    errors.append(f"{path}:{n}: {e}")
        if not errors:
            errors = [f"{path}: {e}" for e in self._check()]
        if errors:
            raise SiteError("\n".join(errors))

    def _statement(self, w, n):
        kw, args = w[0], w[1:]

        def net(s):
            try:
                return ipaddress.IPv4Network(s)
            except ValueError as e:
                raise SiteError(f"{kw}: {e}")

        def addr(s):
            try:
                return ipaddress.IPv4Address(s)
            except ValueError as e:
                raise SiteError(f"{kw}: {e}")

        def port(s):
            if not s.isdigit() or not 1 <= int(s) <= 65535:
                raise SiteError(f"{kw}: invalid port {s!r} (1-65535)")
            return int(s)

        if kw in ("lan", "guard"):
            if len(args) != 1:
                raise SiteError(f"{kw} takes one network")
            setattr(self, kw, net(args[0]))
        elif kw == "service":
            if len(args) < 2:
                raise SiteError("service takes an address and its ports")
            self.vip = addr(args[0])
            self.service_ports = [port(p) for p in args[1:]]
        elif kw == "host":
            if len(args) < 3 or len(args) % 2 == 0:
                raise SiteError("host NAME ADDRESS ROLE [OPTION VALUE]...")
            name, a, role = args[0], addr(args[1]), args[2]
            if not NAME_RX.match(name):
                raise SiteError(f"host name {name!r}: a lower-case letter, "
                                "then letters or digits, 10 at most")
            if role not in ROLES:
                raise SiteError(f"host {name}: unknown role {role!r} "
                                f"({', '.join(ROLES)})")
            opts = dict(zip(args[3::2], args[4::2]))
            known = {"lb": {"priority"}, "db": {"role"}}.get(role, set())
            for o in opts:
                if o not in known:
                    raise SiteError(f"host {name}: unknown option {o!r} "
                                    f"for role {role}")
            if role == "lb":
                p = opts.get("priority", "100")
                if not p.isdigit() or not 1 <= int(p) <= 254:
                    raise SiteError(f"host {name}: priority 1 to 254")
                opts["priority"] = int(p)
            if role == "db" and opts.get("role", "replica") not in (
                    "primary", "replica"):
                raise SiteError(f"host {name}: role primary or replica")
            if role == "db":
                opts.setdefault("role", "replica")
            self.hosts.append(Host(name, a, role, opts, n))
        elif kw == "port":
            if len(args) != 2:
                raise SiteError("port NAME NUMBER")
            if args[0] not in PORTS:
                raise SiteError(f"unknown port {args[0]!r} "
                                f"({', '.join(PORTS)})")
            self.ports[args[0]] = port(args[1])
        elif kw == "set":
            if len(args) < 2:
                raise SiteError("set NAME VALUE...")
            if args[0] not in DEFAULTS:
                raise SiteError(f"unknown setting {args[0]!r} "
                                f"({', '.join(DEFAULTS)})")
            self.settings[args[0]] = " ".join(args[1:])
        else:
            raise SiteError(f"unknown statement {kw!r}")

    def _check(self):
        errs = []
        for kw in ("lan", "guard", "vip"):
            if getattr(self, kw) is None:
                errs.append(f"no {'service' if kw == 'vip' else kw} line")
        if errs:
            return errs
        if not self.guard.is_private:
            errs.append(f"guard {self.guard} is not a private network")
        if not self.lan.subnet_of(self.guard):
            errs.append(f"lan {self.lan} is not inside guard {self.guard}")
        if self.vip not in self.lan:
            errs.append(f"service address {self.vip} is not in the lan")
        seen = {self.vip: "the service address"}
        names = set()
        for h in self.hosts:
            if h.name in names:
                errs.append(f"line {h.line}: host {h.name} twice")
            names.add(h.name)
            if h.addr not in self.lan or h.addr in (
                    self.lan.network_address, self.lan.broadcast_address):
                errs.append(f"line {h.line}: {h.addr} is not a host of "
                            f"the lan {self.lan}")
            if h.addr in seen:
                errs.append(f"line {h.line}: {h.addr} is already "
                            f"{seen[h.addr]}")
            seen[h.addr] = h.name
        for p in PORTS:
            if p not in self.ports:
                errs.append(f"no port {p}")
        for r in ("lb", "web", "db"):
            if not self.role(r):
                errs.append(f"no {r} host")
        prim = [h for h in self.role("db") if h.opts["role"] == "primary"]
        if len(prim) != 1:
            errs.append("one db host must have role primary")
        return errs

    def role(self, r):
        return [h for h in self.hosts if h.role == r]

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def primary(self):
        return [h for h in self.role("db") if h.opts["role"] == "primary"][0]

    def start_order(self):
        """Primary first, then the replicas, the web, lb and other hosts."""
        def key(h):
            return (ROLES.index(h.role),
                    0 if h.opts.get("role") == "primary" else 1)
        return sorted(self.hosts, key=key)

    def internal_ports(self, h):
        """(name, port) of every TCP port the daemons of h listen on at
        its own address (the service ports are on the service address)."""
        names = {"lb": ("lbd-stats",),
                 "web": ("webd", "webd-metrics", "appd-status"),
                 "db": ("dbrepd", "dbrepd-repl", "dbrepd-metrics")}
        return [(n, self.ports[n]) for n in names.get(h.role, ())]

    def metrics_ports(self, h):
        """(name, port, path) where the monitoring host reads h."""
        m = {"lb": [("lbd-stats", "/metrics")],
             "web": [("webd-metrics", "/metrics"),
                     ("appd-status", "/metrics")],
             "db": [("dbrepd-metrics", "/metrics")]}
        return [(n, self.ports[n], p) for n, p in m.get(h.role, [])]


def dbrepd_keywords(dbrepd):
    """The keywords of DBREPD_NEW that the program dbrepd knows (its -n
    does not call them unknown)."""
    import subprocess
    import tempfile
    have = set()
    with tempfile.TemporaryDirectory() as d:
        for kw in DBREPD_NEW:
            conf = os.path.join(d, "t.conf")
            with open(conf, "w") as f:
                f.write(f"data {d}/t.db\nlisten unix:{d}/t.sock\n"
                        f"{kw} 127.0.0.1\n")
            try:
                p = subprocess.run([dbrepd, "-n", "-f", conf],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=10)
            except OSError:
                continue
            if f'unknown keyword "{kw}"' not in p.stdout.decode(
                    errors="replace"):
                have.add(kw)
    return have


def lab_paths(lab, top, build):
    """The lab's layout: each host's own folder under LABDIR."""
    def paths(h):
        d = os.path.join(lab, h.name)
        return {"conf": os.path.join(d, "conf"), "run": os.path.join(d, "run"),
                "db": os.path.join(d, "db"), "tmp": os.path.join(d, "tmp"),
                "keys": os.path.join(d, "keys"),
                "notes": os.path.join(top, build, "lib", "notes.so"),
                "www": os.path.join(top, "appd", "apps", "notes-www")}
    return paths


def installed_paths(h):
    """An installed site's layout (make install, rc.d defaults)."""
    return {"conf": "/etc/lbd-suite", "run": "/run/lbd-suite",
            "db": "/var/db/dbrepd", "tmp": "/var/tmp",
            "keys": "/etc/lbd-suite/keys",
            "notes": "/usr/local/lib/appd/notes.so",
            "www": "/usr/local/share/lbd-suite/notes-www"}


def template(name, values):
    with open(os.path.join(TEMPLATES, name + ".in")) as f:
        text = f.read()

    def sub(m):
        k = m.group(1)
        if k not in values:
            raise SiteError(f"templates/{name}.in: no value for @{k}@")
        return str(values[k])
    return re.sub(r"@([a-z_]+)@", sub, text)


def firewall(site, h):
    """The nftables ruleset of host h: inbound dropped unless the site
    description says who may come; loopback, established traffic and
    the useful ICMP let in; outbound open."""
    P = site.ports

    def addrs(hosts):
        return ", ".join(str(x.addr) for x in hosts)

    sets = [("lb_hosts", site.role("lb")), ("web_hosts", site.role("web")),
            ("db_hosts", site.role("db")),
            ("app_db_hosts", site.role("web") + site.role("db")),
            ("monitor_hosts", site.role("monitor"))]
    out = [f"# nftables ruleset of {h.name} ({h.addr}, {h.role}): applied "
           "by rc.d/firewall",
           f"# in the host's network namespace.  Written by "
           f"tests/e2e/hosts/labgen.py from {os.path.basename(site.path)}.",
           "# Loading it replaces the table whole (the first two lines "
           "make it exist,",
           "# then go), so that a reload never leaves the host open.",
           "table inet lbd_suite",
           "delete table inet lbd_suite",
           "table inet lbd_suite {"]
    for name, hosts in sets:
        if hosts:
            out += [f"\tset {name} {{",
                    "\t\ttype ipv4_addr",
                    f"\t\telements = {{ {addrs(hosts)} }}",
                    "\t}"]
    out += ["",
            "\tchain input {",
            "\t\ttype filter hook input priority filter; policy drop;",
            '\t\tiif "lo" accept',
            "\t\tct state established,related accept",
            "\t\tct state invalid drop",
            "\t\ticmp type { echo-request, destination-unreachable, "
            "time-exceeded, parameter-problem } accept",
            "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, "
            "echo-request, packet-too-big, destination-unreachable, "
            "time-exceeded, parameter-problem } accept"]
    mon = bool(site.role("monitor"))
    if h.role == "lb":
        ports = ", ".join(str(p) for p in site.service_ports)
        out.append(f"\t\tip daddr {site.vip} tcp dport {{ {ports} }} "
                   'accept comment "the site, for everyone"')
        others = [x for x in site.role("lb") if x is not h]
        if others:
            out.append(f"\t\tip saddr {{ {addrs(others)} }} ip protocol "
                       'vrrp accept comment "VRRP from the other lb host"')
        if mon:
            out.append(f"\t\tip saddr @monitor_hosts tcp dport "
                       f"{P['lbd-stats']} accept "
                       "comment \"lbd's statistics\"")
    elif h.role == "web":
        out.append(f"\t\tip saddr @lb_hosts tcp dport {P['webd']} accept "
                   'comment "webd, for the load balancers"')
        if mon:
            out.append(f"\t\tip saddr @monitor_hosts tcp dport {{ "
                       f"{P['webd-metrics']}, {P['appd-status']} }} accept "
                       'comment "webd\'s metrics, appd\'s status"')
    elif h.role == "db":
        out.append(f"\t\tip saddr @app_db_hosts tcp dport {P['dbrepd']} "
                   'accept comment "dbrepd\'s clients"')
        out.append(f"\t\tip saddr @db_hosts tcp dport {P['dbrepd-repl']} "
                   'accept comment "replication, the peers\' epoch checks"')
        if mon:
            out.append(f"\t\tip saddr @monitor_hosts tcp dport "
                       f"{P['dbrepd-metrics']} accept "
                       'comment "dbrepd\'s metrics"')
    out += ['\t\tcounter comment "dropped"',
            "\t}",
            "",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy drop;",
            "\t}",
            "",
            "\tchain output {",
            "\t\ttype filter hook output priority filter; policy accept;",
            "\t}",
            "}",
            ""]
    return "\n".join(out)


def host_files(site, h, p, db_secret, dbrepd_has=DBREPD_NEW):
    """{file name: text} of the conf folder of host h, with paths p;
    dbrepd_has: the keywords of DBREPD_NEW the dbrepd knows."""
    S = site.settings
    base = {"host": h.name, "addr": h.addr, "vip": site.vip,
            "site": os.path.basename(site.path),
            "monitor": " ".join(str(x.addr) for x in site.role("monitor")),
            "lb_hosts": " ".join(str(x.addr) for x in site.role("lb"))}
    for k, v in p.items():
        base[k] = v
    for k, v in site.ports.items():
        base["p_" + k.replace("-", "_")] = v
    files = {}
    if h.role == "lb":
        servers = "\n".join(f"\tserver {w.name} {w.addr}:{site.ports['webd']}"
                            for w in site.role("web"))
        files["lbd.conf"] = template("lbd.conf", dict(base, servers=servers))
        peers = "\n".join(f"\t\t{x.addr}" for x in site.role("lb")
                          if x is not h)
        files["keepalived.conf"] = template("keepalived.conf", dict(
            base, peers=peers, priority=h.opts["priority"],
            interface=S["interface"], vrrp_id=S["vrrp-id"],
            vrrp_advert=S["vrrp-advert"],
            check_interval=S["check-interval"],
            check_fall=S["check-fall"], check_rise=S["check-rise"]))
    elif h.role == "web":
        webs = site.role("web")
        dbs = site.role("db")
        # each app host starts with "its" database node, in turn: web1
        # reads from db1, web2 from db2 (writes find the primary)
        k = webs.index(h) % len(dbs)
        order = dbs[k:] + dbs[:k]
        nodes = " ".join(f"any={d.addr}:{site.ports['dbrepd']}"
                         for d in order)
        app = "app" + h.name[3:] if h.name.startswith("web") else \
            h.name + "-app"
        v = dict(base, app=app, db_nodes=nodes, db_secret=db_secret,
                 db_timeout=S["db-timeout"])
        files["appd.conf"] = template("appd.conf", v)
        files["webd.conf"] = template("webd.conf", v)
    elif h.role == "db":
        repl = site.ports["dbrepd-repl"]
        lines = [f"role {h.opts['role']}"]
        if h.opts["role"] == "replica":
            lines.append(f"primary {site.primary().addr}:{repl}")
        others = [d for d in site.role("db") if d is not h]
        if others:
            lines.append("peer " + " ".join(f"{d.addr}:{repl}"
                                            for d in others))
        clients = " ".join(str(x.addr) for x in
                           site.role("web") + site.role("db"))
        dbs = " ".join(str(d.addr) for d in site.role("db"))
        mon = " ".join(["127.0.0.1"] + [str(x.addr)
                                        for x in site.role("monitor")])
        v = dict(base, role=h.opts["role"], role_lines="\n".join(lines),
                 db_clients=clients, durability=S["durability"],
                 repl_allow=f"replication-allow {dbs}",
                 metrics_allow=f"metrics-allow {mon}",
                 failover=f"failover {S['db-failover']}" if
                 S["db-failover"] != "manual" else
                 "# failover manual (the default): the runbook's "
                 "dbrepctl promote")
        for kw, key in (("replication-allow", "repl_allow"),
                        ("metrics-allow", "metrics_allow"),
                        ("failover", "failover")):
            if kw not in dbrepd_has and not v[key].startswith("#"):
                v[key] = (f"# ({kw}: not in this dbrepd; the firewall "
                          "alone guards)" if key != "failover" else
                          "# (failover: not in this dbrepd)")
        files["dbrepd.conf"] = template("dbrepd.conf", v)
    files["firewall.nft"] = firewall(site, h)
    files["site"] = (f"# the daemons of {h.name} ({h.role}), in the order "
                     "they start (rc.d/site);\n# written by "
                     "tests/e2e/hosts/labgen.py\n" +
                     "".join(d + "\n" for d in DAEMONS[h.role]))
    return files


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def cmd_conf(site, a):
    lab = os.path.abspath(a.dir)
    paths = lab_paths(lab, os.path.abspath(a.top), a.build)
    secret = open(a.secret).read().strip() if a.secret else "change me"
    has = dbrepd_keywords(os.path.join(os.path.abspath(a.top), a.build,
                                       "bin", "dbrepd"))
    for h in site.hosts:
        p = paths(h)
        for name, text in host_files(site, h, p, secret, has).items():
            # appd.conf holds the database secret
            write(os.path.join(p["conf"], name), text,
                  0o600 if name == "appd.conf" else 0o644)


def cmd_sample(site, a):
    for h in site.hosts:
        for name, text in host_files(site, h, installed_paths(h),
                                     "change me").items():
            write(os.path.join(a.dir, h.name, name), text)


def cmd_shell(site, a):
    """For lab.sh: eval "$(labgen.py shell)"."""
    order = site.start_order()
    print(f"lan={site.lan}")
    print(f"lan_len={site.lan.prefixlen}")
    print(f"guard={site.guard}")
    print(f"vip={site.vip}")
    print(f"server_name={site.settings['server-name']}")
    print(f"interface={site.settings['interface']}")
    print(f"hosts='{' '.join(h.name for h in order)}'")
    for h in order:
        print(f"addr_{h.name}={h.addr}")
        print(f"role_{h.name}={h.role}")
    print(f"lb_hosts='{' '.join(h.name for h in site.role('lb'))}'")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-s", "--site", default=SITE)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("conf")
    c.add_argument("dir")
    c.add_argument("--top", default=os.path.join(HERE, "..", "..", ".."))
    c.add_argument("--build", default="build")
    c.add_argument("--secret", help="file with the database secret")
    s = sub.add_parser("sample")
    s.add_argument("dir")
    sub.add_parser("shell")
    sub.add_parser("check")
    a = ap.parse_args()
    try:
        site = Site(a.site)
        if a.cmd == "conf":
            cmd_conf(site, a)
        elif a.cmd == "sample":
            cmd_sample(site, a)
        elif a.cmd == "shell":
            cmd_shell(site, a)
        else:
            print(f"{a.site}: {len(site.hosts)} hosts, OK")
    except (SiteError, OSError) as e:
        print(f"labgen: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
