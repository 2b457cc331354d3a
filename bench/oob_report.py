#!/usr/bin/env python3
"""Table of one bench/oob_cost.sh results directory (stdout).
   oob_report.py RESULTS_DIR

Inputs written by oob_cost.sh: rows.tsv (section, id, label, unit),
confs.tsv (section, config, label; the first config of a section is its
baseline), raw.tsv (section, id, config, run, value), info.txt.
Each cell is the median (min..max) over the runs; each ratio is
config / baseline of the medians, with the range of the per-run ratios
(config and baseline of the same run) in brackets. Counts (unit n) get no
ratio. Goals are informational: a benchmark never gates anything."""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchfmt import fmt  # noqa: E402

# (section, row ids or None for all timed rows, config, reference config,
#  bound, description)
IO = ["pwrite4k", "pread4k", "pwrite1m", "openclose", "create", "again"]
GOALS = [
    ("io", IO + [i + ".cpu" for i in IO], "ignore", "none", None,
     "oob=ignore, a mount with no watch: what noise alone makes of 1.00x"),
    ("io", IO, "detect", "none", 1.05,
     "oob=detect: direct I/O, files without snapshots <= 1.05x no mount (clock)"),
    ("io", [i + ".cpu" for i in IO], "detect", "none", 1.05,
     "oob=detect: direct I/O, files without snapshots <= 1.05x no mount (CPU)"),
    ("io", IO, "preserve", "none", 1.05,
     "oob=preserve: direct I/O, files without snapshots <= 1.05x no mount (clock)"),
    ("io", [i + ".cpu" for i in IO], "preserve", "none", 1.05,
     "oob=preserve: direct I/O, files without snapshots <= 1.05x no mount (CPU)"),
    ("pres_ext4", ["write_ms", "total_ms"], "pres_idle", "pres", 2.0,
     "ext4: rewrite under a snapshot (reader idle) <= 2x the same mount without"),
    ("pres_ext4", ["write_ms", "total_ms"], "pres_slow", "pres", 2.0,
     "ext4: rewrite under a snapshot (reader reading) <= 2x the same mount without"),
    ("pres_xfs", ["write_ms", "total_ms"], "pres_idle", "pres", 2.0,
     "XFS: rewrite under a snapshot (reader idle) <= 2x the same mount without"),
    ("pres_xfs", ["write_ms", "total_ms"], "pres_slow", "pres", 2.0,
     "XFS: rewrite under a snapshot (reader reading) <= 2x the same mount without"),
    ("pres_xfs", ["write_ms", "total_ms"], "pres_idle_off", "pres", 2.0,
     "XFS clone=off: rewrite under a snapshot (reader idle) <= 2x without"),
]


def tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def main(d):
    rows = tsv(os.path.join(d, "rows.tsv"))
    confs = tsv(os.path.join(d, "confs.tsv"))
    vals = {}
    for sec, rid, conf, run, v in tsv(os.path.join(d, "raw.tsv")):
        vals.setdefault((sec, rid, conf), {})[int(run)] = float(v)
    with open(os.path.join(d, "info.txt")) as f:
        print(f.read().rstrip())
    print("cells: median (min..max) over runs; ratio: config/baseline of the "
          "medians [range of per-run ratios]\n")

    def med(sec, rid, conf):
        v = vals.get((sec, rid, conf))
        return statistics.median(v.values()) if v else None

    def ratio(sec, rid, conf, ref):
        a, b = vals.get((sec, rid, conf)), vals.get((sec, rid, ref))
        if not a or not b or not med(sec, rid, ref):
            return None, None, None
        pr = [a[r] / b[r] for r in a if r in b and b[r] > 0]
        return (med(sec, rid, conf) / med(sec, rid, ref),
                min(pr) if pr else None, max(pr) if pr else None)

    def paired(sec, rid, conf, ref):
        a, b = vals.get((sec, rid, conf)), vals.get((sec, rid, ref))
        pr = [a[r] / b[r] for r in (a or {}) if r in (b or {}) and b[r] > 0]
        return statistics.median(pr) if pr else None

    sections = []
    for sec, _, _ in confs:
        if sec not in sections:
            sections.append(sec)
    for sec in sections:
        cs = [(c, l) for s, c, l in confs if s == sec]
        rs = [(rid, label, unit) for s, rid, label, unit in rows if s == sec]
        base = cs[0][0]
        print("== %s (baseline: %s)" % (sec, cs[0][1]))
        for rid, label, unit in rs:
            if not any(vals.get((sec, rid, c)) for c, _ in cs):
                continue
            print("%s [%s]" % (label, unit))
            for c, cl in cs:
                v = vals.get((sec, rid, c))
                if not v:
                    continue
                cell = "%s (%s..%s)" % (fmt(med(sec, rid, c)), fmt(min(v.values())),
                                        fmt(max(v.values())))
                rt = ""
                if unit != "n" and c != base:
                    m, lo, hi = ratio(sec, rid, c, base)
                    if m is not None:
                        rt = "%5.2fx [%s..%s]" % (m, fmt(lo), fmt(hi))
                print("    %-38s %-28s %s" % (cl, cell, rt))
        print()
    print("goals (informational: benchmarks never gate anything); per row the ratio\n"
          "of the medians, and in brackets the median of the per-run ratios")
    for sec, ids, conf, ref, bound, desc in GOALS:
        worst = None
        parts = []
        for rid in ids:
            m, lo, hi = ratio(sec, rid, conf, ref)
            if m is None:
                continue
            parts.append("%s %.2f (%.2f)" % (rid, m, paired(sec, rid, conf, ref)))
            worst = m if worst is None else max(worst, m)
        if worst is None:
            continue
        verdict = "control" if bound is None else "met" if worst <= bound else "MISSED"
        print("  %s: %s\n      %s" % (verdict, desc,
                                      ", ".join(parts)))


if __name__ == "__main__":
    main(sys.argv[1])
