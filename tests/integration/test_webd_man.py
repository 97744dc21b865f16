"""webd's manual pages and sample configuration: webd.8 and webd.conf.5
pass mandoc -Tlint, every keyword of the grammar has its entry in
webd.conf.5 and every flag its entry in webd.8, the EXAMPLES of
webd.conf.5 and webd/webd.conf.sample pass `webd -n`."""
import os
import re
import subprocess

from harness import BIN, TOP, DaemonTest
from httpc import make_cert
import mantest
from mantest import lint, page

PAGES = [os.path.join(TOP, "webd", p) for p in ("webd.8", "webd.conf.5")]
CONF5 = PAGES[1]


def grammar_keywords():
    """The keywords of webd_grammar (webd/parse.c), with those of the
    common/ grammar macros it includes."""
    return mantest.grammar_keywords("webd/parse.c", "webd_grammar")[0]


def options():
    """The option words of webd's keywords (listen ... tls, ...)."""
    return mantest.options("webd/parse.c")


def examples(path):
    """The configuration in the EXAMPLES section's literal display."""
    return mantest.examples(path)[0]


class ManTest(DaemonTest):
    def test_mandoc_lint(self):
        for p in PAGES:
            lint(self, p)

    def test_every_keyword_documented(self):
        text = page(CONF5)
        documented = set(re.findall(r"^\.It Ic ([a-z][a-z0-9-]*)", text,
                                    re.M))
        kws = grammar_keywords()
        self.assertGreater(len(kws), 60)
        self.assertEqual(sorted(kws - documented), [],
                         "keywords without an .It Ic entry")
        self.assertEqual(sorted(documented - kws - {"include"}), [],
                         "entries for keywords webd does not have")
        for o in options():
            self.assertRegex(text, rf"\.(It|Ic|Op|Oo) .*\bIc {o}\b",
                             f"option {o} not documented")
        for s in ("LEXICAL RULES", "EXAMPLES", "SEE ALSO"):
            self.assertIn(f".Sh {s}", text)

    def test_webd8_flags_and_sections(self):
        text = page(PAGES[0])
        for f in ("d", "n", "v", "f", "D", "p"):
            self.assertRegex(text, rf"(?m)^\.It Fl {f}\b", f"-{f}")
        for s in ("SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO"):
            self.assertIn(f".Sh {s}", text)
        for sig in ("SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"):
            self.assertRegex(text, rf"\.It Dv {sig}\b")
        # the usage line of the program matches the synopsis
        r = subprocess.run([os.path.join(BIN, "webd"), "-x"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        for f in re.findall(r"\[-(\w)", r.stdout):
            self.assertRegex(text, rf"(?m)^\.It Fl {f}\b", r.stdout)

    def test_examples_pass_configtest(self):
        conf = examples(CONF5)
        self.assertIn("server ", conf)
        ssl = os.path.join(self.dir, "ssl")
        os.makedirs(os.path.join(ssl, "private"))
        cert, key = make_cert(ssl, "example.org", "ec", ["example.org"])
        os.rename(key, os.path.join(ssl, "private", "example.org.key"))
        d = self.daemon("webd", conf, name="example")
        # -n reads the certificates and the document roots
        www, files = (os.path.join(self.dir, n) for n in ("www", "files"))
        os.makedirs(files)
        macros = ["-D", f"ssl={ssl}", "-D", f"www={www}", "-D",
                  f"files={files}"]
        rc, out = d.run("-n", *macros)
        self.assertEqual(rc, 1)
        line = next(i + 1 for i, t in enumerate(conf.splitlines())
                    if re.match(r"\s*root \$www$", t))
        self.assertRegex(out, rf":{line}: root {re.escape(www)}: No such "
                         "file or directory")
        os.makedirs(www)
        rc, out = d.run("-n", *macros)
        self.assertEqual((rc, out.strip()), (0, "configuration OK"), conf)
        # and the check is real: a broken example fails
        d.write_conf(conf.replace("proxy app", "proxy apx"))
        rc, out = d.run("-n", *macros)
        self.assertEqual(rc, 1)
        self.assertIn('no upstream "apx"', out)

    def test_sample_conf_passes_configtest(self):
        sample = os.path.join(TOP, "webd", "webd.conf.sample")
        r = subprocess.run([os.path.join(BIN, "webd"), "-n", "-D",
                            f"docroot={self.dir}", "-f", sample],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "configuration OK"))
        # installed by make install
        r = subprocess.run(["make", "-n", "-C", TOP, "install",
                            f"BUILD={os.path.basename(os.path.dirname(BIN))}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        self.assertIn("webd/webd.conf.sample", r.stdout)
        self.assertIn("webd/webd.conf.5", r.stdout)
        self.assertIn("webd/webd.8", r.stdout)
