#!/usr/bin/env python3
"""Sum test reports (Criterion --json, and the integration runner's, which
has the same top-level "passed", "failed", "skipped" fields) into one line:
"N passed, N failed".  Exit 1 on any failure or an unreadable report."""
import json
import sys

passed = failed = skipped = 0
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            r = json.load(f)
        passed += int(r.get("passed", 0))
        failed += int(r.get("failed", 0))
        skipped += int(r.get("skipped", 0))
    except (OSError, ValueError) as e:
        print(f"unreadable report {path}: {e}")
        bad += 1
failed += bad
if skipped:
    print(f"({skipped} skipped)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
