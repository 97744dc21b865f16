#!/usr/bin/env python3
"""Integration test runner: runs every tests/integration/test_*.py module
in its own process (a few at a time: the tests mostly wait on daemons),
prints a line per test and the failures, and writes the totals to
$RESULTS/integration.json.  TESTS=substring limits the modules run
(matched against "integration/test_x.py", "e2e/test_y.py");
JOBS=N sets how many run at once (default 3)."""
import json
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
tdirs = sys.argv[1:]
results = os.environ["RESULTS"]
only = os.environ.get("TESTS", "")
jobs = int(os.environ.get("JOBS", "3"))

mods = sorted(os.path.join(d, f) for d in tdirs if os.path.isdir(d)
              for f in os.listdir(d)
              if f.startswith("test_") and f.endswith(".py") and
              only in os.path.join(os.path.basename(d), f))
os.makedirs(os.path.join(results, "integration"), exist_ok=True)
pending = list(mods)
running = {}
totals = {"passed": 0, "failed": 0, "skipped": 0}
t0 = time.time()
rc = 0
while pending or running:
    while pending and len(running) < jobs:
        path = pending.pop(0)
        m = os.path.basename(path)
        out = os.path.join(results, "integration", m[:-3])
        p = subprocess.Popen([sys.executable, os.path.join(here, "runone.py"),
                              path, out + ".json"],
                             stdout=open(out + ".log", "w"),
                             stderr=subprocess.STDOUT)
        running[p] = (m, out, time.time())
    time.sleep(0.1)
    for p in list(running):
        if p.poll() is None:
            continue
        m, out, start = running.pop(p)
        try:
            with open(out + ".json") as f:
                r = json.load(f)
        except (OSError, ValueError):
            r = {"passed": 0, "failed": 1, "skipped": 0, "tests": []}
            print(f"{m}: crashed (exit {p.returncode})")
        for k in totals:
            totals[k] += r[k]
        print(f"{m:<36} {r['passed']} passed, {r['failed']} failed, "
              f"{r['skipped']} skipped ({time.time() - start:.1f}s)")
        if r["failed"]:
            rc = 1
            with open(out + ".log") as f:
                sys.stdout.write(f.read()[-12000:])
        sys.stdout.flush()
with open(os.path.join(results, "integration.json"), "w") as f:
    json.dump(totals, f)
print(f"integration: {totals['passed']} passed, {totals['failed']} failed, "
      f"{totals['skipped']} skipped in {time.time() - t0:.0f}s")
sys.exit(rc)
