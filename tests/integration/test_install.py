"""make install: into a DESTDIR, every daemon and control program, every
manual page, every sample conf, the appd module and its header, the rc.d
scripts; the installed pages render, the installed samples pass the
installed daemons' -n, and the installed rc.d scripts run the installed
daemons."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, TOP, free_port

BUILD = os.path.basename(os.path.dirname(BIN))
DAEMONS = ("lbd", "webd", "appd", "dbrepd")


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="install-")
        r = subprocess.run(["make", "-s", "-C", TOP, "install",
                            f"BUILD={BUILD}", f"DESTDIR={cls.dest}",
                            "PREFIX=/opt/lbd-suite"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        cls.out = r.stdout
        cls.rc = r.returncode
        cls.root = cls.dest + "/opt/lbd-suite"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def test_1_everything_installed(self):
        self.assertEqual(self.rc, 0, self.out)
        root = self.root
        for p in DAEMONS + ("lbdctl", "dbrepctl"):
            path = f"{root}/sbin/{p}"
            self.assertTrue(os.access(path, os.X_OK), path)
        # no test program goes with them
        self.assertEqual(sorted(os.listdir(f"{root}/sbin")),
                         sorted(DAEMONS + ("lbdctl", "dbrepctl")))
        for sec, pages in (("5", [f"{d}.conf.5" for d in DAEMONS]),
                           ("8", [f"{d}.8" for d in DAEMONS] +
                            ["lbdctl.8", "dbrepctl.8"])):
            for p in pages:
                self.assertTrue(os.path.exists(
                    f"{root}/share/man/man{sec}/{p}"), p)
        # every page and sample in the tree is installed
        for p in glob.glob(f"{TOP}/*/*.[58]"):
            sec = p[-1]
            self.assertTrue(os.path.exists(
                f"{root}/share/man/man{sec}/{os.path.basename(p)}"), p)
        for s in glob.glob(f"{TOP}/*/*.conf.sample"):
            self.assertTrue(os.path.exists(
                f"{root}/share/examples/lbd-suite/{os.path.basename(s)}"),
                s)
        self.assertTrue(os.path.exists(f"{root}/lib/appd/notes.so"))
        self.assertTrue(os.path.exists(f"{root}/include/appd/app.h"))
        for r in os.listdir(f"{TOP}/rc.d"):
            self.assertTrue(os.path.exists(f"{root}/etc/rc.d/{r}"), r)
        for d in DAEMONS:
            self.assertTrue(os.access(f"{root}/etc/rc.d/{d}", os.X_OK), d)

    def test_2_pages_render(self):
        for p in glob.glob(f"{self.root}/share/man/man*/*"):
            r = subprocess.run(["mandoc", "-Tascii", p],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, (p, r.stderr))
            text = re.sub(".\x08", "", r.stdout)    # overstrike
            self.assertIn("NAME", text, p)
            self.assertIn("DESCRIPTION", text, p)

    def test_3_rc_scripts_run_installed_daemons(self):
        """The installed rc.d script starts, reports and stops the
        installed webd, with BINDIR, CONFDIR and RUNDIR set as
        /etc/default/lbd-suite would."""
        work = tempfile.mkdtemp(prefix="install-run-")
        self.addCleanup(shutil.rmtree, work, True)
        os.makedirs(f"{work}/conf")
        os.makedirs(f"{work}/www")
        with open(f"{work}/www/index.html", "w") as f:
            f.write("installed\n")
        port = free_port()
        with open(f"{work}/conf/webd.conf", "w") as f:
            f.write(f'server "t" {{\n\tlisten 127.0.0.1:{port}\n'
                    f'\troot "{work}/www"\n}}\n')
        env = dict(os.environ, BINDIR=f"{self.root}/sbin",
                   CONFDIR=f"{work}/conf", RUNDIR=work)
        rc = f"{self.root}/etc/rc.d/webd"

        def run(cmd):
            return subprocess.run(["sh", rc, cmd], env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=60)
        r = run("configtest")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run("start")
        self.addCleanup(run, "stop")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run("status")
        self.assertEqual(r.returncode, 0, r.stdout)
        out = subprocess.run(["curl", "-sS", "--max-time", "5",
                              f"http://127.0.0.1:{port}/"],
                             stdout=subprocess.PIPE, text=True, timeout=10)
        self.assertEqual(out.stdout, "installed\n")
        r = run("stop")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(run("status").returncode, 3)


if __name__ == "__main__":
    unittest.main()
