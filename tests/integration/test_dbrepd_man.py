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

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PAGES = [os.path.join(TOP, "dbrepd", p)
         for p in ("dbrepd.8", "dbrepd.conf.5", "dbrepctl.8")]
CONF5 = PAGES[1]


def page(path):
    with open(path) as f:
        return f.read()


def grammar():
    """Keywords and option words of dbrepd/dbrepd.c's grammar, with the
    common PROC_GRAMMAR's."""
    src = page(os.path.join(TOP, "dbrepd", "dbrepd.c"))
    table = src[src.index("static const struct conf_kw grammar[]"):]
    table = table[:table.index("{ NULL }\n};")]
    kws = set(re.findall(r'\{ "([a-z][a-z0-9-]*)",', table))
    proc = page(os.path.join(TOP, "common", "proc.h"))
    d = re.search(r"#define PROC_GRAMMAR\b.*?(?<!\\)\n", proc, re.S)
    kws |= set(re.findall(r'\{ "([a-z][a-z0-9-]*)",', d.group(0)))
    opts = set()
    for block in re.findall(r"static const struct conf_opt \w+\[\] = "
                            r"\{(.*?)\n\};", src, re.S):
        opts |= set(re.findall(r'\{ "([a-z][a-z0-9-]*)",', block))
    return kws, opts


def examples(path):
    text = page(path)
    ex = text[text.index(".Sh EXAMPLES"):]
    ex = ex[:ex.index("\n.Sh ", 1)]
    return [m.replace("\\e", "\\").replace("\\&", "") for m in
            re.findall(r"^\.Bd -literal.*?\n(.*?)^\.Ed$", ex, re.S | re.M)]


class Man(DbrepTest):
    def test_mandoc_lint(self):
        for p in PAGES:
            r = subprocess.run(["mandoc", "-Tlint", p],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=30)
            left = [ln for ln in r.stdout.splitlines()
                    if "referenced manual not found" not in ln and
                    "outdated mandoc.db" not in ln]
            self.assertEqual(left, [], p)

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
