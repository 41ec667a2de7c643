#!/usr/bin/env python3
"""Counts meson's test log (testlog.json) into the closing line CI reads:
'N passed, N failed, N skipped'. Before it: how many suites ran and how
many were skipped, and one line per skip reason with its count, so a
machine without /dev/kvm (or root, or a tool) shows what it did not test.
A missing log (the build failed) counts as one failure. Exits 1 if
anything failed."""
import collections
import json
import os
import re
import sys

NO_REASON = "(the suite printed no reason)"


def skip_reason(stdout):
    """The reason a skipped suite printed: guestlib's 'SKIP: why', a TAP
    plan '1..0 # SKIP why', or the reason most of its TAP subtests gave."""
    lines = (stdout or "").splitlines()
    for line in lines:
        m = re.match(r"\s*SKIP:\s*(.+)$", line)
        if m:
            return m.group(1).strip()
    for line in lines:
        m = re.match(r"\s*1\.\.0\s*#\s*SKIP\b:?\s*(.*)$", line, re.I)
        if m and m.group(1).strip():
            return m.group(1).strip()
    sub = collections.Counter()
    for line in lines:
        m = re.match(r"\s*ok\b.*#\s*SKIP\b:?\s*(.*)$", line, re.I)
        if m and m.group(1).strip():
            sub[m.group(1).strip()] += 1
    if sub:
        return sub.most_common(1)[0][0]
    for line in reversed(lines):     # last resort: the suite's last words
        if line.strip():
            return line.strip()
    return NO_REASON


def names_label(names):
    """'guest-pair-*' for names sharing a prefix, the name for one."""
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    if "-" in prefix:
        prefix = prefix[:prefix.rindex("-") + 1]
    return (prefix + "*") if prefix else ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def main():
    paths = sys.argv[1:] or ["build/meson-logs/testlog.json"]
    passed = failed = skipped = 0
    failures = []
    reasons = collections.OrderedDict()     # reason -> [suite names]
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    t = json.loads(line)
                    r = t.get("result", "")
                    name = str(t.get("name", "")).split(" / ")[-1]
                    if r in ("OK", "EXPECTEDFAIL"):
                        passed += 1
                    elif r == "SKIP":
                        skipped += 1
                        reasons.setdefault(skip_reason(t.get("stdout")), []).append(name)
                    else:
                        failed += 1
                        failures.append("%s (%s)" % (t.get("name"), r))
        except FileNotFoundError:
            print("no test log at %s: the build or test setup failed" % path)
            failed += 1
    for f in failures:
        print("FAILED: " + f)
    print("suites: %d ran (%d passed, %d failed), %d skipped" % (passed + failed, passed, failed, skipped))
    for reason, names in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        print("  skipped %3d %s: %s" % (len(names), names_label(names), reason))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
