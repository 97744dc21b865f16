"""The notes page in a real browser: headless Chromium (Debian's chromium
and chromium-driver), driven over the W3C WebDriver protocol with plain
HTTP calls to chromedriver (no Python dependency).  The page loads through
lbd over HTTP and HTTPS (Chromium trusting exactly the demo's self-signed
certificate), its script adds a note and deletes it: checked in the DOM
and through the API on both app servers.  When a check fails, a
screenshot is kept in the test's folder.  When Chromium cannot start
here, the test says why and is skipped."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_for                  # noqa: E402
from sitelib import Client, SiteTest                     # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(Exception):
    pass


class Browser:
    """A chromedriver and one Chromium session."""

    def __init__(self, workdir, args):
        self.dir = workdir
        self.port = free_port()
        self.sid = None
        self.log = os.path.join(workdir, "chromedriver.log")
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", f"--log-path={self.log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self.ready, 15, step=0.05, what="chromedriver")
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
            v = self.call("POST", "/session", caps, timeout=60)
            self.sid = v["sessionId"]
        except BaseException:
            self.quit()
            raise

    def ready(self):
        try:
            return self.call("GET", "/status", timeout=1)["ready"]
        except (OSError, WebDriverError, ValueError):
            return False

    def call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                v = json.load(r)["value"]
        except urllib.error.HTTPError as e:
            v = json.load(e)["value"]
            raise WebDriverError(f"{v.get('error')}: "
                                 f"{v.get('message', '')[:600]}")
        return v

    def s(self, method, path, body=None, **kw):
        return self.call(method, f"/session/{self.sid}{path}", body, **kw)

    def get(self, url):
        self.s("POST", "/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync",
                      {"script": script, "args": list(args)})

    def find(self, css):
        return self.s("POST", "/element",
                      {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def cookies(self):
        return {c["name"]: c["value"] for c in self.s("GET", "/cookie")}

    def console(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"})
        except WebDriverError:
            return []

    def wait_js(self, script, what, *args, timeout=10):
        return wait_for(lambda: self.js(script, *args), timeout, step=0.05,
                        what=what)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        if self.sid is not None:
            try:
                self.s("DELETE", "", timeout=15)
            except (OSError, WebDriverError):
                pass
            self.sid = None
        if self.driver.poll() is None:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()


def spki_hash(cert):
    """base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate, for
    Chromium's --ignore-certificate-errors-spki-list."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout",
                          "-pubkey"], stdout=subprocess.PIPE, check=True)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub.stdout, stdout=subprocess.PIPE,
                         check=True)
    dig = subprocess.run(["openssl", "dgst", "-sha256", "-binary"],
                         input=der.stdout, stdout=subprocess.PIPE,
                         check=True)
    return base64.b64encode(dig.stdout).decode()


class BrowserTest(SiteTest):
    def start_browser(self):
        for p in (CHROMIUM, CHROMEDRIVER):
            if not os.access(p, os.X_OK):
                self.skipTest(f"{p} is not installed (Debian's chromium "
                              "and chromium-driver)")
        profile = os.path.join(self.dir, "chromium-profile")
        shutil.rmtree(profile, ignore_errors=True)
        args = ["--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--disable-background-networking",
                "--disable-component-update", "--no-first-run",
                "--disable-sync", "--window-size=1000,800",
                "--ignore-certificate-errors-spki-list=" +
                spki_hash(self.site.ca)]
        t0 = time.time()
        try:
            b = Browser(self.dir, args)
        except (OSError, WebDriverError, AssertionError) as e:
            log = ""
            try:
                with open(os.path.join(self.dir, "chromedriver.log")) as f:
                    log = f.read()[-1500:]
            except OSError:
                pass
            print(f"Chromium did not start: {e}\n{log}")
            self.skipTest(f"Chromium cannot start here: {e}"[:300])
        self.addCleanup(b.quit)
        print(f"Chromium started in {time.time() - t0:.1f}s")
        return b

    def test_page_adds_and_deletes_a_note(self):
        b = self.start_browser()
        try:
            self.page_checks(b)
        except BaseException:
            shot = os.path.join(self.dir, "screenshot.png")
            try:
                b.screenshot(shot)
                print(f"screenshot of the failure: {shot}")
            except Exception as e:          # the failure is what matters
                print(f"no screenshot: {e}")
            print(f"browser console: {b.console()}")
            raise

    def page_checks(self, b):
        site = self.site
        http, https = site.ports["http"], site.ports["https"]
        b.get(f"http://127.0.0.1:{http}/")
        self.assertEqual(b.s("GET", "/title"), "notes")
        # the script ran: it asked /api/whoami through lbd
        who = b.wait_js("var t = document.getElementById('who')"
                        ".textContent; return /^answered by app[12] /"
                        ".test(t) ? t : null", "the page's whoami line")
        # markup in a note is text, never HTML
        text = f"from chromium {uuid.uuid4()} <img src=x " \
            "onerror=\"window.pwned=1\">"
        b.type("textarea[name=text]", text)
        b.type("input[name=author]", "chromium")
        b.click("#add button[type=submit]")
        li = b.wait_js(
            "var l = document.querySelectorAll('#notes li');"
            "for (var i = 0; i < l.length; i++)"
            "  if (l[i].querySelector('.text').textContent === arguments[0])"
            "    return l[i].id;"
            "return null;", "the new note in the list", text)
        self.assertRegex(li, r"^note-\d+$")
        nid = int(li[5:])
        self.assertEqual(b.js("return document.getElementById('error')"
                              ".textContent"), "")
        self.assertEqual(b.js("return [typeof window.pwned, "
                              "document.querySelectorAll('#notes img')"
                              ".length]"), ["undefined", 0])
        self.assertEqual(b.js("return document.querySelector('#' + "
                              "arguments[0] + ' .meta').textContent"
                              ".split(',')[0]", li), "chromium")
        self.assertEqual(b.js("return document.querySelector("
                              "'textarea[name=text]').value"), "")
        # the browser holds the session's LSN (HttpOnly cookie); with it,
        # both app servers have the note
        lsn = int(b.cookies()["appd_lsn"])
        self.assertGreater(lsn, 0)
        c = Client(site)
        c.cookies = {"appd_lsn": str(lsn)}
        for web in ("web1", "web2"):
            r = c.get(f"/api/notes/{nid}", port=site.ports[web],
                      cookies=True)
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json()["text"], r.json()["author"]),
                             (text, "chromium"))
        # delete it with its button
        b.click(f"#{li} button")
        b.wait_js("return document.getElementById(arguments[0]) === null",
                  "the note to leave the list", li)
        self.assertEqual(b.js("return document.getElementById('error')"
                              ".textContent"), "")
        lsn2 = int(b.cookies()["appd_lsn"])
        self.assertGreater(lsn2, lsn)
        c.cookies = {"appd_lsn": str(lsn2)}
        for web in ("web1", "web2"):
            r = c.get(f"/api/notes/{nid}", port=site.ports[web])
            self.assertEqual(r.status, 404, r)
        # loaded again, over HTTPS: the list is the API's, without it
        for i in range(3):
            self.assertEqual(c.post_note(f"for the list {i}",
                                         tls=True).status, 201)
        b.get(f"https://127.0.0.1:{https}/")
        self.assertEqual(b.js("return location.protocol"), "https:")
        b.wait_js("return /^answered by app[12] /.test(document"
                  ".getElementById('who').textContent)",
                  "the page's whoami line over HTTPS")
        api = [(f"note-{n['id']}", n["text"]) for n in
               c.get("/api/notes", tls=True).json()["notes"]]
        self.assertGreaterEqual(len(api), 3)
        shown = b.wait_js(
            "var l = document.querySelectorAll('#notes li');"
            "return l.length === arguments[0] ? "
            "Array.prototype.map.call(l, function (x) { return [x.id, "
            "x.querySelector('.text').textContent]; }) : null;",
            "the list over HTTPS", len(api))
        self.assertEqual([tuple(x) for x in shown], api)
        self.assertNotIn(text, [x[1] for x in shown])
        errors = [e for e in b.console() if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [])
        print(f"page: {who!r}; note {nid} added and deleted through the "
              f"page (LSN {lsn} -> {lsn2}); {len(shown)} notes over HTTPS")
