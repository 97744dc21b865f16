"""The site description and its generator (tests/e2e/hosts/labgen.py),
without a lab: the description parses, a broken one is refused with
file:line for each error, the shipped samples are what the generator
writes, every generated conf passes its program's own check (lbd, webd,
appd, dbrepd -n; keepalived -t; nft -c in a namespace of its own), and
lab.sh down is idempotent."""
import filecmp
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN                                 # noqa: E402
from lablib import HERE, LAB_SH, labgen                 # noqa: E402

SAMPLES = os.path.join(HERE, "hosts", "samples")


def run(*args, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30, **kw)
    return p.returncode, p.stdout.decode(errors="replace")


class Generator(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="labgen-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.tmp])

    def test_site_parses(self):
        s = labgen.Site()
        self.assertEqual([h.name for h in s.role("lb")], ["lb1", "lb2"])
        self.assertEqual([h.name for h in s.role("web")], ["web1", "web2"])
        self.assertEqual(s.primary().name, "db1")
        self.assertEqual([h.name for h in s.start_order()][:2],
                         ["db1", "db2"])
        self.assertTrue(s.guard.is_private)
        self.assertTrue(all(h.addr in s.guard for h in s.hosts))

    def test_broken_site_refused(self):
        bad = os.path.join(self.tmp, "bad.txt")
        with open(bad, "w") as f:
            f.write("lan 10.200.0.0/24\nguard 10.200.0.0/16\n"
                    "service 10.200.0.10 80\n"
                    "host lb1 10.200.0.11 lb priority 300\n"     # 4
                    "host Web1 10.200.0.21 web\n"                # 5
                    "host db1 10.200.0.31 dbase\n"               # 6
                    "port webd 70000\n"                          # 7
                    "colour blue\n")                             # 8
        with self.assertRaises(labgen.SiteError) as e:
            labgen.Site(bad)
        msg = str(e.exception)
        for n in (4, 5, 6, 7, 8):
            self.assertIn(f"{bad}:{n}:", msg)
        rc, out = run(sys.executable, labgen.__file__, "-s", bad, "check")
        self.assertEqual(rc, 1)
        self.assertIn("bad.txt:8: unknown statement 'colour'", out)
        # outside the guard, and no primary
        with open(bad, "w") as f:
            f.write("lan 192.0.2.0/24\nguard 10.200.0.0/16\n"
                    "service 192.0.2.10 80\nhost lb1 192.0.2.11 lb\n"
                    "host web1 192.0.2.21 web\n"
                    "host db1 192.0.2.31 db role replica\n")
        with self.assertRaises(labgen.SiteError) as e:
            labgen.Site(bad)
        self.assertIn("is not inside guard", str(e.exception))
        self.assertIn("one db host must have role primary",
                      str(e.exception))

    def test_samples_are_current(self):
        """tests/e2e/hosts/samples is what labgen.py sample writes."""
        rc, out = run(sys.executable, labgen.__file__, "sample", self.tmp)
        self.assertEqual(rc, 0, out)
        mine, theirs = [], []
        for top, lst in ((self.tmp, mine), (SAMPLES, theirs)):
            for d, _, files in os.walk(top):
                lst += sorted(os.path.relpath(os.path.join(d, f), top)
                              for f in files)
        self.assertEqual(sorted(mine), sorted(theirs),
                         "run: python3 tests/e2e/hosts/labgen.py sample "
                         "tests/e2e/hosts/samples")
        differ = [f for f in mine if not filecmp.cmp(
            os.path.join(self.tmp, f), os.path.join(SAMPLES, f),
            shallow=False)]
        self.assertEqual(differ, [], "samples out of date: python3 "
                         "tests/e2e/hosts/labgen.py sample "
                         "tests/e2e/hosts/samples")

    @unittest.skipUnless(os.geteuid() == 0, "needs root (nft -c in a "
                         "namespace, the daemons' -n as root)")
    def test_generated_confs_pass_their_checks(self):
        top = os.path.abspath(os.path.join(HERE, "..", ".."))
        build = os.path.relpath(os.path.dirname(BIN), top)
        secret = os.path.join(self.tmp, "secret")
        with open(secret, "w") as f:
            f.write("0123456789abcdef")
        rc, out = run(sys.executable, labgen.__file__, "conf", self.tmp,
                      "--top", top, "--build", build, "--secret", secret)
        self.assertEqual(rc, 0, out)
        # the keys lab.sh makes
        crt = os.path.join(self.tmp, "site.crt")
        key = os.path.join(self.tmp, "site.key")
        rc, out = run("openssl", "req", "-x509", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", crt, "-days", "1", "-subj",
                      "/CN=www.lab.test")
        self.assertEqual(rc, 0, out)
        site = labgen.Site()
        checked = []
        for h in site.hosts:
            keys = os.path.join(self.tmp, h.name, "keys")
            os.makedirs(keys, mode=0o700)
            for src, dst in ((crt, "site.crt"), (key, "site.key"),
                             (secret, "ticket.key"),
                             (secret, "dbrepd.secret")):
                with open(src, "rb") as f, open(os.path.join(keys, dst),
                                                "wb") as o:
                    data = f.read()
                    o.write(data * 4 if dst == "ticket.key" else data)
                os.chmod(os.path.join(keys, dst), 0o600)
            conf = os.path.join(self.tmp, h.name, "conf")
            for name in sorted(os.listdir(conf)):
                path = os.path.join(conf, name)
                prog = name.split(".")[0]
                if name.endswith(".conf") and prog in ("lbd", "webd",
                                                       "appd", "dbrepd"):
                    rc, out = run(os.path.join(BIN, prog), "-n", "-f", path)
                elif name == "keepalived.conf":
                    rc, out = run("keepalived", "-t", "-f", path)
                elif name == "firewall.nft":
                    rc, out = run("unshare", "--net", "nft", "-c", "-f",
                                  path)
                else:
                    continue
                checked.append(f"{h.name}/{name}")
                self.assertEqual(rc, 0, f"{h.name}/{name}: {out}")
        self.assertEqual(len(checked), 8 + 2 * 2 + 2 * 2 + 2)
        print(f"{len(checked)} confs pass their checks", flush=True)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_down_is_idempotent(self):
        env = dict(os.environ, LAB=os.path.join(self.tmp, "lab"),
                   LAB_PREFIX=f"ltdown{os.getpid()}")
        for _ in range(2):
            p = subprocess.run(["sh", LAB_SH, "down"], env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout)
        p = subprocess.run(["sh", LAB_SH, "status"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 3, p.stdout)
