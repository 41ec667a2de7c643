#!/usr/bin/env python3
"""Counts meson's test log (testlog.json) into the closing line CI reads:
'N passed, N failed, N skipped'. A missing log (the build failed) counts as
one failure. Exits 1 if anything failed."""
import json
import sys

paths = sys.argv[1:] or ["build/meson-logs/testlog.json"]
passed = failed = skipped = 0
failures = []
for path in paths:
  try:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            r = t.get("result", "")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
                failures.append("%s (%s)" % (t.get("name"), r))
  except FileNotFoundError:
    print("no test log at %s: the build or test setup failed" % path)
    failed += 1
for f in failures:
    print("FAILED: " + f)
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
