"""dbrepd's manual pages and sample configuration: dbrepd.8,
dbrepd.conf.5 and dbrepctl.8 pass mandoc -Tlint, every keyword of the
grammar has its entry in dbrepd.conf.5, the EXAMPLES of dbrepd.conf.5
and dbrepd/dbrepd.conf.sample pass `dbrepd -n`."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dbreptest import BIN, DbrepTest  # noqa: E402
import mantest  # noqa: E402
from mantest import examples, lint, page  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PAGES = [os.path.join(TOP, "dbrepd", p)
         for p in ("dbrepd.8", "dbrepd.conf.5", "dbrepctl.8")]
CONF5 = PAGES[1]


def grammar():
    """Keywords and option words of dbrepd/dbrepd.c's grammar, with the
    common PROC_GRAMMAR's."""
    kws, macros = mantest.grammar_keywords("dbrepd/dbrepd.c", "grammar")
    assert "PROC_GRAMMAR" in macros, macros
    opts = mantest.options("dbrepd/dbrepd.c")
    if "TLS_GRAMMAR" in macros:
        # the tls { } block's words are described under tls, as options
        tlsw = set(re.findall(mantest.WORD,
                              mantest.macro_body("TLS_GRAMMAR"))) - {"tls"}
        kws -= tlsw
        opts |= tlsw
    return kws, opts


class Man(DbrepTest):
    def test_mandoc_lint(self):
        for p in PAGES:
            lint(self, p, warnings=False)

    def test_every_keyword_documented(self):
        text = page(CONF5)
        documented = set(re.findall(r"^\.It Ic ([a-z][a-z0-9-]*)", text,
                                    re.M))
        kws, opts = grammar()
        self.assertGreater(len(kws), 30)
        self.assertEqual(sorted(kws - documented), [],
                         "keywords without an .It Ic entry")
        self.assertEqual(sorted(documented - kws), [],
                         "entries for keywords dbrepd does not have")
        for o in opts:
            self.assertRegex(text, rf"\bIc {o}\b", f"option {o}")

    def test_pages_sections(self):
        d8 = page(PAGES[0])
        for f in ("d", "n", "v", "f", "D"):
            self.assertRegex(d8, rf"(?m)^\.It Fl {f}\b", f"-{f}")
        for s in ("SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO"):
            self.assertIn(f".Sh {s}", d8)
        ctl = page(PAGES[2])
        for c in ("query", "status", "promote", "repoint", "snapshot"):
            self.assertRegex(ctl, rf"(?m)^\.It Cm {c}\b", c)

    def test_examples_pass_configtest(self):
        exs = examples(CONF5)
        self.assertEqual(len(exs), 2)
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write("s3cret\n")
        for i, conf in enumerate(exs):
            d = self.daemon("dbrepd", conf, name=f"example{i}")
            rc, out = d.run("-n", "-D", "dbuser=nobody", "-D",
                            f"secret={secret}")
            self.assertEqual((rc, out.strip()), (0, "configuration OK"),
                             conf)
        # the check is real: a broken example fails
        d.write_conf(exs[0].replace("quorum 1", "quorum 99"))
        rc, out = d.run("-n", "-D", "dbuser=nobody", "-D",
                        f"secret={secret}")
        self.assertEqual(rc, 1)

    def test_sample_conf_passes_configtest(self):
        sample = os.path.join(TOP, "dbrepd", "dbrepd.conf.sample")
        r = subprocess.run([os.path.join(BIN, "dbrepd"), "-n", "-f", sample],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "configuration OK"))
