"""Helpers of the man page tests (test_*_man.py): read a daemon's
grammar from its C source, the EXAMPLES of a page, and lint a page."""
import os
import re
import subprocess

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORD = r'\{ "([a-z][a-z0-9-]*)",'


def page(path):
    with open(path) as f:
        return f.read()


def macro_body(name):
    """The text of #define <name> in common/'s headers."""
    for h in sorted(os.listdir(os.path.join(TOP, "common"))):
        if h.endswith(".h"):
            d = re.search(rf"#define {name}\b.*?(?<!\\)\n",
                          page(os.path.join(TOP, "common", h)), re.S)
            if d:
                return d.group(0)
    raise AssertionError(f"no #define {name} in common/")


def grammar_keywords(src, table):
    """The keywords of the conf_kw array <table> in the file <src> (from
    the top of the tree), with those of the common/ grammar macros it
    includes.  Returns (keywords, macro names)."""
    text = page(os.path.join(TOP, src))
    t = text[text.index(f"const struct conf_kw {table}[]"):]
    t = t[:t.index("{ NULL }")]
    kws = set(re.findall(WORD, t))
    macros = set(re.findall(r"\b([A-Z_]+_GRAMMAR)\(", t) +
                 re.findall(r"\b(PROC_GRAMMAR)\b", t))
    for m in macros:
        kws |= set(re.findall(WORD, macro_body(m)))
    return kws, macros


def options(*srcs):
    """The option words (conf_opt arrays) of the files <srcs>."""
    opts = set()
    for src in srcs:
        for block in re.findall(r"(?:static )?const struct conf_opt \w+\[\]"
                                r" = \{(.*?)\n\};",
                                page(os.path.join(TOP, src)), re.S):
            opts |= set(re.findall(WORD, block))
    return opts


def examples(path):
    """The configurations in the literal displays of EXAMPLES."""
    text = page(path)
    ex = text[text.index(".Sh EXAMPLES"):]
    ex = ex[:ex.index("\n.Sh ", 1)]
    return [m.replace("\\e", "\\").replace("\\&", "") for m in
            re.findall(r"^\.Bd -literal.*?\n(.*?)^\.Ed$", ex, re.S | re.M)]


def lint(tc, path, warnings=True):
    """mandoc -Tlint on <path>: nothing at the warning level (when
    <warnings>), and at the style level nothing but what comes of pages
    not installed on this machine."""
    if warnings:
        r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        tc.assertEqual((r.returncode, r.stdout), (0, ""), path)
    r = subprocess.run(["mandoc", "-Tlint", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    left = [ln for ln in r.stdout.splitlines()
            if "referenced manual not found" not in ln and
            "outdated mandoc.db" not in ln]
    tc.assertEqual(left, [], path)
