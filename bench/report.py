#!/usr/bin/env python3
"""Turn one bench/run.sh results directory into a table (stdout and
table.txt), results.json and plot.png (gnuplot; plot.svg if PNG terminals
are missing).   report.py RESULTS_DIR

Inputs written by run.sh: rows.tsv (id, section, label, unit, better,
n/a text), raw.tsv (id, target, run, value), info.json (machine, params).
Ratios are stablefs / other of the measured metric: above 1 is better for
MiB/s and IOPS, below 1 is better for latencies and bytes."""
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchfmt import fmt  # noqa: E402

TARGETS = [("raw", "raw SRC"), ("pll", "passthrough_ll"), ("sfs", "stablefs")]

# (description, row id, kind, bound, reference row id)
# kind: "pll" = sfs/pll ratio, "raw_ref" = sfs / the raw SRC median of the
# reference row (raw read(), memcpy), "sfs_ref" = sfs / the stablefs median
# of the reference row, "self" = no-reader / with-reader throughput of
# stablefs, "abs" = value.
GOALS = [
    ("seq splice(), hot >= 2.0x passthrough_ll", "read.splice.hot", "pll", (">=", 2.0), None),
    ("seq splice(), hot >= 0.6x raw read()", "read.splice.hot", "raw_ref", (">=", 0.6), "read.read.hot"),
    ("seq splice(), FUSE-cold >= 4x passthrough_ll", "read.splice.fcold", "pll", (">=", 4.0), None),
    ("seq read(), FUSE-cold >= 4x passthrough_ll", "read.read.fcold", "pll", (">=", 4.0), None),
    ("seq splice(), FUSE-cold >= 0.35x memcpy", "read.splice.fcold", "raw_ref", (">=", 0.35), "read.memcpy"),
    ("seq read(), FUSE-cold >= 0.35x memcpy", "read.read.fcold", "raw_ref", (">=", 0.35), "read.memcpy"),
    ("FUSE-cold splice, read-ahead 1 MiB (default) >= 128 KiB", "read.splice.fcold", "sfs_ref", (">=", 1.0), "read.splice.fcold128"),
    ("seq splice(), disk-cold >= 2.0x passthrough_ll", "read.splice.cold", "pll", (">=", 2.0), None),
    ("seq splice(), disk-cold >= 0.8x raw read()", "read.splice.cold", "raw_ref", (">=", 0.8), "read.read.cold"),
    ("seq read(), disk-cold >= 0.8x raw read()", "read.read.cold", "raw_ref", (">=", 0.8), "read.read.cold"),
    ("1 reader >= 1.0x passthrough_ll", "conc.1", "pll", (">=", 1.0), None),
    ("2 readers >= 1.0x passthrough_ll", "conc.2", "pll", (">=", 1.0), None),
    ("4 readers >= 1.0x passthrough_ll", "conc.4", "pll", (">=", 1.0), None),
    ("8 readers >= 1.0x passthrough_ll", "conc.8", "pll", (">=", 1.0), None),
    ("2 readers >= 1.2x 1 reader (aggregate; scales onto a 2nd CPU)", "conc.2", "sfs_ref", (">=", 1.2), "conc.1"),
    ("8 readers >= 0.9x 2 readers (no collapse past the CPUs)", "conc.8", "sfs_ref", (">=", 0.9), "conc.2"),
    ("seq write 1 MiB >= 1.5x passthrough_ll", "write.1m", "pll", (">=", 1.5), None),
    ("seq write 4 KiB >= 1.5x passthrough_ll", "write.4k", "pll", (">=", 1.5), None),
    ("metadata create <= 1.2x passthrough_ll latency", "meta.create", "pll", ("<=", 1.2), None),
    ("metadata stat <= 1.2x passthrough_ll latency", "meta.stat", "pll", ("<=", 1.2), None),
    ("metadata open+close <= 1.2x passthrough_ll latency", "meta.open", "pll", ("<=", 1.2), None),
    ("metadata readdir <= 1.2x passthrough_ll latency", "meta.readdir", "pll", ("<=", 1.2), None),
    ("metadata unlink <= 1.2x passthrough_ll latency", "meta.unlink", "pll", ("<=", 1.2), None),
    ("ext4 overwrite under a snapshot reader <= 1.5x the time without", "snap.ext4.reader", "self", ("<=", 1.5), "snap.ext4.plain"),
    ("XFS (reflink) overwrite under a snapshot reader <= 1.1x the time without", "snap.xfs.reader", "self", ("<=", 1.1), "snap.xfs.plain"),
    ("daemon memory per preserved extent <= 200 bytes", "mem.extent", "abs", ("<=", 200.0), None),
]


def load(d):
    rows, values = [], {}
    with open(os.path.join(d, "rows.tsv")) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            rows.append(dict(id=p[0], section=p[1], label=p[2], unit=p[3], better=p[4],
                             na=p[5] if len(p) > 5 else ""))
    with open(os.path.join(d, "raw.tsv")) as f:
        for line in f:
            rid, t, run, v = line.rstrip("\n").split("\t")
            values.setdefault(rid, {}).setdefault(t, []).append((int(run), float(v)))
    with open(os.path.join(d, "info.json")) as f:
        info = json.load(f)
    return rows, values, info


def summarize(rows, values):
    for r in rows:
        r["targets"] = {}
        for t, _ in TARGETS:
            runs = [v for _, v in sorted(values.get(r["id"], {}).get(t, []))]
            if runs:
                r["targets"][t] = dict(median=statistics.median(runs), min=min(runs),
                                       max=max(runs), n=len(runs), runs=runs)
        med = {t: s["median"] for t, s in r["targets"].items()}
        r["ratio_vs_passthrough_ll"] = med["sfs"] / med["pll"] if med.get("pll") and "sfs" in med else None
        r["ratio_vs_raw"] = med["sfs"] / med["raw"] if med.get("raw") and "sfs" in med else None


def goals(rows):
    by = {r["id"]: r for r in rows}
    out = []
    for desc, rid, kind, (op, bound), ref in GOALS:
        r = by.get(rid)
        g = dict(goal=desc, row=rid, bound=bound, op=op, value=None, met=None)
        if r is None:
            g["status"] = "not measured"
        elif r["na"]:
            g["status"] = r["na"]
        else:
            s = r["targets"].get("sfs", {}).get("median")
            v = None
            if kind == "pll":
                v = r["ratio_vs_passthrough_ll"]
            elif kind == "abs":
                v = s
            elif kind in ("raw_ref", "sfs_ref"):
                t = kind.split("_")[0]
                rr = by.get(ref, {}).get("targets", {}).get(t, {}).get("median")
                v = s / rr if s and rr else None
            elif kind == "self":
                base = by.get(ref, {}).get("targets", {}).get("sfs", {}).get("median")
                v = base / s if s and base else None	# time ratio = inverse throughput ratio
            if v is None:
                g["status"] = "no data"
            else:
                g["value"] = v
                g["met"] = v >= bound if op == ">=" else v <= bound
                g["status"] = "met" if g["met"] else "MISSED"
        out.append(g)
    return out


def table(rows, gl, info):
    p = info["params"]
    lines = []
    lines.append("stablefs benchmark  %s  kernel %s  %d CPUs  %.1f GiB RAM  %s  libfuse %s"
                 % (info["date"], info["kernel"], info["nproc"], info["mem_total_kib"] / 2**20,
                    info["src_fs"], info["libfuse"]))
    lines.append("median (min..max) of %d runs per cell, targets alternated; quick=%d; load avg at end %s"
                 % (p["runs"], p["quick"], info["loadavg_end"]))
    if info.get("note"):
        lines.append("note: " + info["note"])
    if info.get("warm_memory"):
        lines.append("fresh memory touched before each cold, concurrent and write measurement: "
                     + info["warm_memory"])
    lines.append("ratios are stablefs/other of the metric (hi: >1 is better for stablefs, lo: <1 is better)")
    lines.append("")
    head = "%-38s %-9s %-2s  %-22s %-22s %-22s %8s %8s" % (
        "row", "unit", "", "raw SRC", "passthrough_ll", "stablefs", "sfs/pll", "sfs/raw")
    lines.append(head)
    lines.append("-" * len(head))
    section = None
    for r in rows:
        if section is not None and r["section"] != section:
            lines.append("")
        section = r["section"]
        hl = "hi" if r["better"] == "higher" else "lo"
        if r["na"]:
            lines.append("%-38s %-9s %-2s  %s" % (r["label"], r["unit"], hl, r["na"]))
            continue
        cells = []
        for t, _ in TARGETS:
            s = r["targets"].get(t)
            cells.append("%s (%s..%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"])) if s else "-")
        lines.append("%-38s %-9s %-2s  %-22s %-22s %-22s %8s %8s" % (
            r["label"], r["unit"], hl, cells[0], cells[1], cells[2],
            fmt(r["ratio_vs_passthrough_ll"]), fmt(r["ratio_vs_raw"])))
    lines.append("")
    lines.append("goals (informational: benchmarks never gate CI)")
    for g in gl:
        val = ("%.2f" % g["value"]) if g["value"] is not None else ""
        lines.append("  %-72s %6s  %s" % (g["goal"], val, g["status"]))
    return "\n".join(lines) + "\n"


def plot(d, rows):
    """Bars per row: stablefs speed relative to passthrough_ll and to raw SRC
    (the ratio for higher-is-better rows, its inverse for latencies), log y."""
    data = []
    for r in rows:
        if r["na"]:
            continue
        vals = []
        for key in ("ratio_vs_passthrough_ll", "ratio_vs_raw"):
            v = r[key]
            if v and r["better"] == "lower":
                v = 1 / v
            vals.append("%.4g" % v if v else "NaN")
        if vals != ["NaN", "NaN"]:
            data.append('"%s" %s %s' % (r["label"].replace('"', "'"), vals[0], vals[1]))
    if not data:
        return None
    with open(os.path.join(d, "plot.dat"), "w") as f:
        f.write("\n".join(data) + "\n")
    gp = shutil.which("gnuplot")
    if not gp:
        return None
    script = """set terminal %s
set output '%s'
set title "stablefs relative to passthrough_ll and to raw SRC, same run (>1 = stablefs better; latency and memory rows inverted)" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set grid ytics
set ylabel 'ratio, >1 = stablefs better (log scale)'
set xtics rotate by -40 left noenhanced
set key top right noenhanced
set bmargin 12
set rmargin 12
plot 'plot.dat' using 2:xtic(1) title 'stablefs / passthrough_ll', '' using 3 title 'stablefs / raw SRC', 1 with lines lc rgb 'black' dt 2 notitle
"""
    err = ""
    for term, name in (("pngcairo size 1400,800 font 'sans,10'", "plot.png"),
                       ("png size 1400,800", "plot.png"), ("svg size 1400,800", "plot.svg")):
        with open(os.path.join(d, "plot.gp"), "w") as f:
            f.write(script % (term, name))
        res = subprocess.run([gp, "plot.gp"], cwd=d, capture_output=True, text=True)
        if res.returncode == 0 and os.path.exists(os.path.join(d, name)) \
                and os.path.getsize(os.path.join(d, name)) > 0:
            return name
        err = res.stderr.strip()
    sys.stderr.write("report: gnuplot failed: %s\n" % err)
    return None


def main():
    d = sys.argv[1]
    rows, values, info = load(d)
    summarize(rows, values)
    gl = goals(rows)
    text = table(rows, gl, info)
    with open(os.path.join(d, "table.txt"), "w") as f:
        f.write(text)
    pic = plot(d, rows)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(dict(machine={k: v for k, v in info.items() if k not in ("params", "note")},
                       params=info["params"], note=info.get("note", ""),
                       targets=dict(TARGETS), rows=rows, goals=gl, plot=pic), f, indent=1)
    sys.stdout.write(text)
    sys.stdout.write("\nresults: %s/results.json%s\n" % (d, ", %s/%s" % (d, pic) if pic else " (no plot)"))


if __name__ == "__main__":
    main()
