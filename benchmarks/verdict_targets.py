#!/usr/bin/env python
"""Issue 17's targets in one table: fixed stations, open-set verdicts, crops and throughput,
each measured by its own benchmark in this one run, then printed side by side with its target.

    python benchmarks/verdict_targets.py [--work DIR] [--open-set-share 0.4] [--crop-share 0.05]

Steps (each a subprocess writing JSON into --work; a step whose JSON is already there is not
run again, so an interrupted run resumes, and `--only-print` prints what is there):

1. fixed stations: `reid synth --same-place` (40 individuals x 6, mild renders), then
   benchmarks/fixed_stations.py: split by sighting, a fifth held out, station given;
2. open set: nyala-dev `reid split --new-fraction 0.2`, benchmarks/open_set_dump.py on the
   photos of `--open-set-share` of the individuals, benchmarks/open_set_eval.py: the policy
   fitted on one half of the individuals and reported on the other, both ways;
3. crops: nyala-dev cut to its saliency boxes (benchmarks/crop_set.py make) and synthetic
   close-ups (`reid synth --closeup`, 40 x 10, with whole-frame renders of the same
   individuals), benchmarks/crops.py rows (a) detected, (c) RootSIFT + MAGSAC, (d) whole;
4. throughput: benchmarks/throughput.py (`reid batch` on the nyala-dev queries before and
   after, MiewID's forward pass, identify p95 at a 10,000-image gallery).

Every number comes from data nothing here was tuned on, except where the table says so. The
machine's load average is printed: speed rows mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
NYALA = Path("/work/shared/data/nyala-dev/labels.csv")


def step(out: Path, commands: list[list[str]]) -> dict[str, Any]:
    """Run the commands (unless `out` exists) and read the JSON the last one wrote to `out`."""
    if not out.is_file():
        for cmd in commands:
            print("$", " ".join(cmd), file=sys.stderr, flush=True)
            done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                  text=True)
            if done.returncode != 0:
                sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}")
            print(done.stdout, file=sys.stderr, flush=True)
    return json.loads(out.read_text())


def reid(*args: str) -> list[str]:
    return [sys.executable, "-m", "reid.cli", *args]


def bench(name: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / name), *args]


def measure(work: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each step's JSON, measuring the missing ones."""
    py = work / "json"
    py.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    wanted = set(args.steps.split(","))
    if "fixed" in wanted:
        spt = work / "fixed-stations"
        out["fixed"] = step(py / "fixed.json", [
            reid("synth", "--individuals", "40", "--per-individual", "6", "--easy", "--same-place",
                 "--out", str(spt)),
            bench("fixed_stations.py", str(spt / "labels.csv"), "--json", str(py / "fixed.json"))])
    if "open-set" in wanted:
        split = work / "open-set-split"
        out["open_set"] = step(py / "open_set.json", [
            reid("split", str(args.labels), "--out-dir", str(split), "--new-fraction", "0.2", "-q"),
            bench("open_set_dump.py", "--gallery", str(split / "gallery.csv"), "--queries",
                  str(split / "queries.csv"), "--data-dir", str(work / "open-set-dd"), "--out",
                  str(work / "open-set-dump.json"), "--identity-share", str(args.open_set_share)),
            bench("open_set_eval.py", str(work / "open-set-dump.json"), "--json", str(py / "open_set.json"))])
    if "crops" in wanted:
        cut = work / "crop-set"
        out["crops_nyala"] = step(py / "crops_nyala.json", [
            bench("crop_set.py", "make", str(cut), "--labels", str(args.labels)),
            bench("crops.py", "--crops", str(cut / "crops" / "labels.csv"), "--frames",
                  str(cut / "frames" / "labels.csv"), "--identity-share", str(args.crop_share), "--rows", "a,c,d",
                  "--json", str(py / "crops_nyala.json"))])
        close, whole = work / "closeup", work / "closeup-whole"
        synth = ("--individuals", "40", "--per-individual", "10", "--easy", "--size", "320", "256", "--seed", "1")
        out["crops_synthetic"] = step(py / "crops_synthetic.json", [
            reid("synth", *synth, "--closeup", "--out", str(close)),
            reid("synth", *synth, "--out", str(whole)),
            bench("crops.py", "--crops", str(close / "labels.csv"), "--frames", str(whole / "labels.csv"),
                  "--identity-share", "0.5", "--rows", "a,c,d", "--json", str(py / "crops_synthetic.json"))])
    if "throughput" in wanted:
        out["throughput"] = step(py / "throughput.json", [
            bench("throughput.py", "--work", str(work / "throughput"), "--labels", str(args.labels),
                  "--forward-batches", "4", "--json", str(py / "throughput.json"))])
    return out


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else "**met**" if ok else "not met"


def table(m: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, met) rows."""
    rows: list[tuple[str, str, str, str]] = []
    if "fixed" in m:
        f = m["fixed"]
        d, off = f["variants"]["default"], f["variants"]["off"]
        k = f["kinds"]
        where = (f"synthetic trail cameras ({f['gallery']} gallery photos; {k.get('returning', 0)} returning, "
                 f"{k.get('stranger', 0)} strangers at gallery stations)")
        rows += [
            (f"{where}: re-sightings that lose rank 1 / a right `match` to the scene check",
             f"{d['lost']} / {d['lost_match']} (returning `match` {d['returning_match']}, check off "
             f"{off['returning_match']})", "0 / 0", verdict(d["lost"] == 0 and d["lost_match"] == 0)),
            (f"{where}: wrong `match` from a shared background",
             f"{d['wrong_match_shared_place']} (check off: {off['wrong_match_shared_place']})", "0",
             verdict(d["wrong_match_shared_place"] == 0))]
    if "open_set" in m:
        o = m["open_set"]
        pol = next(iter(o["policy"].values()))
        where = f"nyala-dev open set ({o['known']} known, {o['new']} new queries, cross-fitted)"
        prec = "none called `match`" if pol["match_precision"] is None else f"{pol['match_precision']:.3f}"
        rows += [
            (f"{where}: new-individual AUROC (policy confidence; P1 alone)",
             f"{pol['auroc']:.3f}; {o['auroc']['p1']:.3f}", ">= 0.75", verdict(pol["auroc"] >= 0.75)),
            (f"{where}: decision accuracy (policy; today's rule)",
             f"{pol['decision_accuracy']:.3f}; {o['today']['decision_accuracy']:.3f}", ">= 0.5",
             verdict(pol["decision_accuracy"] >= 0.5)),
            (f"{where}: `match` precision, coverage", f"{prec}, coverage {pol['coverage']:.3f} "
             f"({pol['right_match']} of {pol['match']})", f">= {o['target_precision']}, coverage reported",
             verdict(pol["match_precision"] is not None and pol["match_precision"] >= o["target_precision"]
                     and pol["match"] > 0)),
            (f"{where}: top-1 (the ranking; the policy only decides)", f"{o['top1']:.3f}", "no lower than today",
             "-")]
    for key, name in (("crops_nyala", "nyala-dev crops"), ("crops_synthetic", "synthetic close-ups")):
        if key in m:
            r = m[key]["rows"]
            a, c, d = r["a"], r["c"], r.get("d")
            where = f"{name} ({a['n']} known queries, crops detected {a['detected']:.2f})"
            rows.append((f"{where}: top-1, crop pipeline vs RootSIFT + MAGSAC over the whole same-flank gallery",
                         f"{a['top1']:.3f} vs {c['top1']:.3f} ({100 * (a['top1'] - c['top1']):+.1f} points)",
                         ">= +5 points", verdict(a["top1"] >= c["top1"] + 0.05 - 1e-9)))
            if d is not None:
                same = "the same photos whole" if key == "crops_nyala" else "whole-frame renders of the same animals"
                rows.append((f"{where}: top-1 vs {same}", f"{a['top1']:.3f} vs {d['top1']:.3f}", "no lower",
                             verdict(a["top1"] >= d["top1"] - 1e-9)))
    if "throughput" in m:
        t = m["throughput"]
        after, before = t["runs"]["after"], t["runs"]["before"]
        where = f"`reid batch`, {t['queries']} nyala-dev queries, {t['cores']} cores"
        rows += [
            (f"{where}: photos/s (before the batched chain)",
             f"{after['photos_per_s']:.2f} ({before['photos_per_s']:.2f}), top-1 {after['top1']:.3f} "
             f"({before['top1']:.3f}), peak RSS {after['peak_rss_gib']:.2f} GiB", ">= 20",
             verdict(after["photos_per_s"] >= 20)),
            (f"{where}: / MiewID's forward pass ({t['forward_images_per_s']:.2f} images/s)",
             f"{after['photos_per_s'] / t['forward_images_per_s']:.1f}x", ">= 10x",
             verdict(after["photos_per_s"] >= 10 * t["forward_images_per_s"]))]
        if t.get("identify_10k"):
            p = t["identify_10k"]
            rows.append(("identify one photo, 10,000-image gallery: p95", f"{p['p95_ms']:.0f} ms (p50 "
                         f"{p['p50_ms']:.0f}), peak RSS {p['peak_rss_gib']:.2f} GiB", "<= 300 ms",
                         verdict(p["p95_ms"] <= 300)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reid-verdict-targets")
    ap.add_argument("--labels", type=Path, default=NYALA, help="nyala-dev labels (default: %(default)s)")
    ap.add_argument("--open-set-share", type=float, default=0.4, help="share of individuals in the open-set step")
    ap.add_argument("--crop-share", type=float, default=0.05, help="share of individuals in the nyala crop step")
    ap.add_argument("--steps", default="fixed,open-set,crops,throughput")
    ap.add_argument("--only-print", action="store_true", help="print the JSON already in --work, run nothing")
    args = ap.parse_args()
    loads = [" ".join(f"{v:.1f}" for v in os.getloadavg())]
    if args.only_print:
        m = {p.stem: json.loads(p.read_text()) for p in sorted((args.work / "json").glob("*.json"))}
    else:
        m = measure(args.work, args)
    loads.append(" ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"issue 17 targets; {os.cpu_count()} cores; load average (1, 5, 15 min) at start and end: "
          f"{' | '.join(loads)}")
    print()
    print("| what | measured | target | |")
    print("|---|---|---|---|")
    for row in table(m):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
