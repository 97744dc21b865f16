"""appd's manual pages and sample configuration: appd.8 and appd.conf.5
pass mandoc -Tlint, every keyword of the grammar has its entry in
appd.conf.5, and the EXAMPLES of appd.conf.5 and appd/appd.conf.sample
pass `appd -n` (module and CGI paths pointed at the build's)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from appdtest import (AppdTest, NOTES, TESTAPP)  # noqa: E402
from harness import BIN, TOP  # noqa: E402
import mantest  # noqa: E402
from mantest import examples, lint, page  # noqa: E402

PAGES = [os.path.join(TOP, "appd", p) for p in ("appd.8", "appd.conf.5")]
CONF5 = PAGES[1]
SAMPLE = os.path.join(TOP, "appd", "appd.conf.sample")


def grammar():
    """Keywords and option words of appd/parse.c's grammar, with the
    common PROC_GRAMMAR's and HTTP_LIMITS_GRAMMAR's."""
    kws, macros = mantest.grammar_keywords("appd/parse.c", "appd_grammar")
    assert {"PROC_GRAMMAR", "HTTP_LIMITS_GRAMMAR"} <= macros, macros
    return kws, mantest.options("appd/parse.c")


class Man(AppdTest):
    def test_mandoc_lint(self):
        for p in PAGES:
            lint(self, p, warnings=False)

    def test_every_keyword_documented(self):
        text = page(CONF5)
        documented = set(re.findall(r"^\.It Ic ([a-z][a-z0-9-]*)", text,
                                    re.M))
        kws, opts = grammar()
        self.assertGreater(len(kws), 35)
        self.assertEqual(sorted(kws - documented), [],
                         "keywords without an .It Ic entry")
        self.assertEqual(sorted(documented - kws), [],
                         "entries for keywords appd does not have")
        for o in opts:
            self.assertRegex(text, rf"\bIc {o}\b", f"option {o}")

    def test_page_sections(self):
        d8 = page(PAGES[0])
        for f in ("d", "n", "v", "f", "D", "p"):
            self.assertRegex(d8, rf"(?m)^\.It Fl {f}\b", f"-{f}")
        for s in ("SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO",
                  "STANDARDS", "CAVEATS"):
            self.assertIn(f".Sh {s}", d8)

    def check(self, conf, name):
        cgi = os.path.join(self.dir, "cgi-bin")
        os.makedirs(cgi, exist_ok=True)
        conf = (conf.replace("/usr/local/lib/appd/notes.so", NOTES)
                .replace("/usr/local/lib/appd/hello.so", TESTAPP)
                .replace("/var/www/cgi-bin", cgi))
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write(conf)
        r = subprocess.run([os.path.join(BIN, "appd"), "-n", "-f", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "configuration OK"), conf)

    def test_examples_and_sample_pass_configtest(self):
        ex = examples(CONF5)
        self.assertGreaterEqual(len(ex), 2)
        for i, conf in enumerate(ex):
            self.check(conf, f"example{i}")
        self.check(page(SAMPLE), "sample")
