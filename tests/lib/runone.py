#!/usr/bin/env python3
"""Run one integration test module; write its counts to a JSON file."""
import importlib.util
import json
import os
import sys
import time
import unittest

path, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    os.path.basename(path)[:-3], path)
mod = importlib.util.module_from_spec(spec)


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t = time.time()
        print(f"-- {test.id()}", flush=True)
        super().startTest(test)

    def stopTest(self, test):
        print(f"   ({time.time() - self._t:.1f}s)", flush=True)
        super().stopTest(test)


counts = {"passed": 0, "failed": 0, "skipped": 0}
try:
    spec.loader.exec_module(mod)
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=Result)
    res = runner.run(suite)
    # a setUpClass error is not a test that ran: it fails, passes none
    real = [t for t, _ in res.errors
            if not isinstance(t, unittest.suite._ErrorHolder)]
    counts["failed"] = len(res.failures) + len(res.errors) + \
        len(res.unexpectedSuccesses)
    counts["skipped"] = len(res.skipped)
    counts["passed"] = max(0, res.testsRun - len(res.failures) - len(real) -
                           len(res.unexpectedSuccesses) - len(res.skipped))
except Exception:
    import traceback
    traceback.print_exc()
    counts["failed"] += 1
with open(out, "w") as f:
    json.dump(counts, f)
