#!/usr/bin/env python3
"""Print one closing line, 'tests: N passed, N failed, N skipped', counting
the TAP subtests of every meson test in the given build dirs."""
import json
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as log:
            runs = [json.loads(line) for line in log if line.strip()]
    except OSError:
        print(f"stablefs: {build}: no test log")
        failed += 1
        continue
    for run in runs:
        result = run.get("result")
        sub = [l for l in run.get("stdout", "").splitlines()
               if l.startswith(("ok ", "not ok "))]
        if result == "SKIP" and not sub:
            skipped += 1
        elif result not in ("OK", "SKIP", "EXPECTEDFAIL"):
            # a crash or timeout counts even when its subtests said ok
            failed += max(1, sum(l.startswith("not ok") and "# SKIP" not in l
                                 for l in sub))
        else:
            for line in sub:
                if "# SKIP" in line.upper():  # cmocka 1.1: "not ok N # SKIP"
                    skipped += 1
                elif line.startswith("not ok"):
                    failed += 1
                else:
                    passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
