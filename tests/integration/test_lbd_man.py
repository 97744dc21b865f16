"""lbd's manual pages and sample configurations: lbd.8 and lbd.conf.5
pass mandoc -Tlint, every keyword of lbd_grammar (and of the common/
grammar macros it includes) has its entry in lbd.conf.5 and every
option its mention, every flag and signal its entry in lbd.8, and the
EXAMPLES of lbd.conf.5, lbd/lbd.conf.sample and
lbd/lbd-two-hosts.conf.sample pass `lbd -n` (the certificate, error
page and ticket key paths given as -D macros)."""
import os
import re
import subprocess

from harness import BIN, TOP, DaemonTest
from httpc import make_cert
import mantest
from mantest import lint, page

PAGES = [os.path.join(TOP, "lbd", p) for p in ("lbd.8", "lbd.conf.5")]
CONF5 = PAGES[1]
SAMPLES = [os.path.join(TOP, "lbd", p)
           for p in ("lbd.conf.sample", "lbd-two-hosts.conf.sample")]


def grammar_keywords():
    """The keywords of lbd_grammar (lbd/parse.c), with those of the
    common/ grammar macros it includes."""
    kws, macros = mantest.grammar_keywords("lbd/parse.c", "lbd_grammar")
    assert macros == {"PROC_GRAMMAR", "TLS_GRAMMAR", "HTTP_LIMITS_GRAMMAR",
                      "PROXY_GRAMMAR"}, macros
    return kws


def options():
    """The option words of lbd's keywords (listen ... tls, check ...
    interval, server ... weight, certificate ... key)."""
    return mantest.options("lbd/parse.c", "common/proxy_conf.c",
                           "common/tls.c")


def examples(path):
    """The configuration in the EXAMPLES section's literal display."""
    return mantest.examples(path)[0]


class ManTest(DaemonTest):
    def files(self):
        """Certificates, an error page and a ticket key where the
        examples' macros point."""
        ssl = os.path.join(self.dir, "ssl")
        os.makedirs(os.path.join(ssl, "private"))
        cert, key = make_cert(ssl, "example.org", "ec", ["example.org"])
        os.rename(key, os.path.join(ssl, "private", "example.org.key"))
        errors = os.path.join(self.dir, "errors")
        os.makedirs(errors)
        with open(os.path.join(errors, "503.html"), "w") as f:
            f.write("<p>back soon</p>\n")
        keys = os.path.join(self.dir, "keys")
        os.makedirs(keys)
        for k in ("ticket.key", "cookie.key"):
            with open(os.path.join(keys, k), "wb") as f:
                f.write(os.urandom(64))
            os.chmod(os.path.join(keys, k), 0o600)
        return ["-D", f"ssl={ssl}", "-D", f"errors={errors}", "-D",
                f"keys={keys}"]

    def configtest(self, path, defines):
        r = subprocess.run([os.path.join(BIN, "lbd"), "-n", "-f", path,
                            *defines], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=10)
        return r.returncode, r.stdout

    def test_mandoc_lint(self):
        for p in PAGES:
            lint(self, p)

    def test_every_keyword_documented(self):
        text = page(CONF5)
        documented = set(re.findall(r"^\.It Ic ([a-z][a-z0-9-]*)", text,
                                    re.M))
        kws = grammar_keywords()
        self.assertGreater(len(kws), 55)
        self.assertEqual(sorted(kws - documented), [],
                         "keywords without an .It Ic entry")
        self.assertEqual(sorted(documented - kws - {"include"}), [],
                         "entries for keywords lbd does not have")
        opts = options()
        self.assertTrue({"tls", "facility", "code", "status", "interval",
                         "key", "weight", "backup"} <= opts, opts)
        for o in opts:
            self.assertRegex(text, rf"\.(It|Ic|Op|Oo) .*\bIc {o}\b",
                             f"option {o} not documented")
        for s in ("LEXICAL RULES", "GLOBAL CONFIGURATION", "FRONTENDS",
                  "BACKENDS", "HAPROXY EQUIVALENTS", "EXAMPLES",
                  "SEE ALSO"):
            self.assertIn(f".Sh {s}", text)
        # every keyword entry says its default or its limits (or is a
        # block, or a list with no default to give); an entry with no
        # text shares the next one's ("allow" then "deny")
        entries = re.split(r"^\.It Ic ", text, flags=re.M)[1:]
        quiet = [e.split()[0] for e in entries
                 if e.strip().count("\n") > 0 and
                 not re.search(r"Default|default|\bto\b|at most|at "
                               r"least|may repeat|May repeat|Brq", e)]
        self.assertEqual(quiet, [], "entries without a default or limit")
        # the HAProxy names an operator looks for
        for h in ("timeout http-request", "hard-stop-after",
                  "timeout queue", "timeout tunnel", "option forwardfor",
                  "send-proxy-v2", "accept-proxy", "errorfile"):
            self.assertIn(h, text)

    def test_lbd8_flags_signals_and_sections(self):
        text = page(PAGES[0])
        for f in ("d", "n", "v", "f", "D", "p"):
            self.assertRegex(text, rf"(?m)^\.It Fl {f}\b", f"-{f}")
        for s in ("SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO",
                  "LOGGING", "STATISTICS"):
            self.assertIn(f".Sh {s}", text)
        for sig in ("SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"):
            self.assertRegex(text, rf"\.It Dv {sig}\b")
        # the usage line of the program matches the synopsis
        r = subprocess.run([os.path.join(BIN, "lbd"), "-x"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        flags = re.findall(r"\[-(\w+)", r.stdout)
        self.assertTrue(flags, r.stdout)
        for group in flags:
            for f in group:
                self.assertRegex(text, rf"(?m)^\.It Fl {f}\b", r.stdout)
        # the metric families it lists are the ones /metrics has
        src = "".join(page(os.path.join(TOP, "lbd", f))
                      for f in ("parse.c", "stats_page.c"))
        families = set(re.findall(r'"(lbd_[a-z_]+)"', src))
        self.assertGreater(len(families), 20)
        for fam in families:
            self.assertIn(fam, text, f"{fam} not in lbd.8")

    def test_examples_pass_configtest(self):
        defines = self.files()
        conf = examples(CONF5)
        self.assertIn("frontend ", conf)
        d = self.daemon("lbd", conf, name="example")
        rc, out = d.run("-n", *defines)
        self.assertEqual((rc, out.strip()), (0, "configuration OK"), conf)
        # and the check is real: a broken example fails
        d.write_conf(conf.replace("backend api\n", "backend apx\n", 1))
        rc, out = d.run("-n", *defines)
        self.assertEqual(rc, 1)
        self.assertIn('no backend "apx"', out)
        # a -D whose name is not a macro's is an error, not dropped
        d.write_conf(conf)
        rc, out = d.run("-n", "-D", "1bad=x", *defines)
        self.assertEqual(rc, 1, out)
        self.assertIn("-D 1bad=x: not a macro name", out)

    def test_keywords_the_mode_would_ignore_refused(self):
        """A keyword that a frontend's or backend's mode would silently
        ignore is an error naming its line (TLS to a tcp backend's
        servers used to go plain); so is a host route that could never
        match."""
        tcp_fe = ("frontend f {\n\tmode tcp\n\tlisten 127.0.0.1:1\n"
                  "\tbackend b\n%s}\nbackend b {\n\tmode tcp\n"
                  "\tserver s 127.0.0.1:2\n%s}\n")
        http_fe = ("frontend f {\n\tlisten 127.0.0.1:1\n\tbackend b\n%s}"
                   "\nbackend b {\n\tserver s 127.0.0.1:2\n%s}\n")
        cases = [
            (tcp_fe % ("", "\ttls yes\n"), 9,
             "tls needs mode http (a tcp backend relays bytes"),
            (tcp_fe % ("", "\tresponse-timeout 5s\n"), 9,
             "response-timeout needs mode http"),
            (tcp_fe % ("", "\tmax-queue 5\n"), 9,
             "max-queue needs mode http"),
            (tcp_fe % ("", "\ttunnel-timeout 5s\n"), 9,
             "tunnel-timeout of a tcp backend: set it in the frontend"),
            (tcp_fe % ("\terror-page 503 /etc/hostname\n", ""), 5,
             "error pages need mode http"),
            (tcp_fe % ("\tconn-limit 5 status 429\n", ""), 5,
             "conn-limit status needs mode http"),
            (http_fe % ("\ttunnel-timeout 5s\n", ""), 4,
             "tunnel-timeout of an http frontend: set it in the backend"),
            (http_fe % ("", "\tcheck tcp tls\n"), 7,
             "check tcp only connects: host, tls and expect"),
            (http_fe % ("", "\tcheck tls expect x\n"), 7,
             "check tls only completes a handshake"),
            # what a check writes on its request line and in Host
            (http_fe % ("", '\tcheck http path "/a b"\n'), 7,
             "check path: no spaces, control bytes or \"#\""),
            (http_fe % ("", '\tcheck http host "x\\nEvil: 1"\n'), 7,
             "check host: a host name or an address"),
            (http_fe % ("\troute host example.org:8080 backend b\n", ""),
             4, "a host route is a name or \"*.name\", without a port: "
             "example.org:8080"),
            # each at its own line, not the frontend's
            (tcp_fe % ("\troute path /x backend b\n", ""), 5,
             "route needs mode http"),
            (tcp_fe % ("\tredirect https\n", ""), 5,
             "redirect needs mode http"),
            (tcp_fe % ("\theader set X-A b\n", ""), 5,
             "header needs mode http"),
            (tcp_fe % ("\trate-limit 10 1s\n", ""), 5,
             "rate-limit needs mode http"),
            (http_fe % ("", "\tmode tcp\n"), 3,
             "frontend f is mode http but backend b is not"),
            ("frontend f {\n\tlisten 127.0.0.1:1\n\tbackend b\n"
             "\troute path /x backend t\n}\nbackend b {\n"
             "\tserver s 127.0.0.1:2\n}\nbackend t {\n\tmode tcp\n"
             "\tserver s 127.0.0.1:3\n}\n", 4,
             "frontend f routes to backend t of another mode"),
        ]
        d = self.daemon("lbd", "", name="broken")
        for conf, line, msg in cases:
            d.write_conf(conf)
            rc, out = d.run("-n")
            self.assertEqual(rc, 1, (conf, out))
            self.assertIn(f"{d.conf_path}:{line}: {msg}", out, conf)
        # a final dot is taken off, and the rule matches as written
        d.write_conf(http_fe % ("\troute host example.org. backend b\n",
                                ""))
        rc, out = d.run("-n")
        self.assertEqual((rc, out.strip()), (0, "configuration OK"), out)

    def test_samples_pass_configtest(self):
        defines = self.files()
        for s in SAMPLES:
            rc, out = self.configtest(s, defines)
            self.assertEqual((rc, out.strip()), (0, "configuration OK"), s)
            # the macros are what makes them pass here: the paths in the
            # files are the real ones
            rc, out = self.configtest(s, [])
            self.assertEqual(rc, 1, s)
        # the two-host sample shares a ticket key file, and it must be
        # private
        text = page(SAMPLES[1])
        self.assertRegex(text, r"(?m)^\s+ticket-key-file ")
        os.chmod(os.path.join(self.dir, "keys", "ticket.key"), 0o644)
        rc, out = self.configtest(SAMPLES[1], defines)
        self.assertEqual(rc, 1)
        self.assertIn("chmod 600", out)
        # installed by make install
        r = subprocess.run(["make", "-n", "-C", TOP, "install",
                            f"BUILD={os.path.basename(os.path.dirname(BIN))}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        for f in ("lbd/lbd.conf.sample", "lbd/lbd-two-hosts.conf.sample",
                  "lbd/lbd.conf.5", "lbd/lbd.8"):
            self.assertIn(f, r.stdout)
