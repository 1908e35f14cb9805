#!/usr/bin/env python
"""How accuracy on individuals retraining never saw grows with the number of confirmed individuals.

    nice -n 10 python benchmarks/retrain_curve.py --labels ../shared/data/nyala-dev/labels.csv \
        --work /tmp/rt-curve --counts 20 45 89 --minutes 8 10 16 [--synthetic 12] \
        [--png docs/retraining-curve.png]

For each count N: the first N individuals of the seeded first half of the individuals are a
project's confirmed catalogue, retrained with `reid retrain --minutes M` (through
benchmarks/retrain_nyala.py --skip-eval, in WORK/n<N>). Then the shipped model and every
retrained one identify the same unseen half (split by sighting, a fifth held out as new;
EVAL.md), global embedding alone and fused, each with a 2-fold cross-fitted calibration
(reid.retrain_gate.evaluate_models). --synthetic N: the same models on N synthetic leopards
(the forgetting check). The plot: top-1 on the unseen half against N, shipped as a line.

nyala-dev is evaluation data: the retrained models stay in WORK (a scratch dir), never shipped.
Resumable: what is done is kept in WORK/curve.json. Prints the tables and the PNG's path.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _retrain(args: argparse.Namespace, count: int, minutes: float) -> dict:
    work = args.work / f"n{count}"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "retrain_nyala.py"), "--labels", str(args.labels),
                           "--work", str(work), "--individuals", str(count), "--minutes", str(minutes),
                           "--seed", str(args.seed), "--skip-eval"], text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"retrain_nyala.py failed for {count} individuals:\n{proc.stderr[-3000:]}")
    results = json.loads((work / "results.json").read_text())
    rec = results["retrain"]
    return {"individuals": count, "minutes": minutes, "version": rec["version"],
            "checkpoint": str(work / "project" / "models" / f"{rec['version']}.pt"),
            "enroll": results["enroll"], "training": {k: v for k, v in rec["training"].items() if k != "history"},
            "data": rec["data"], "gate": rec["gate"], "seconds": rec["seconds"],
            "command_seconds": rec.get("command_seconds"), "cpu_seconds": rec["cpu_seconds"],
            "peak_rss_mib": rec["peak_rss_mib"], "held_out_table": rec["held_out_table"]}


def _top1(table: list[dict], model: str, ranking: str) -> float | None:
    return next((r["top1"] for r in table if r["model"] == model and r["ranking"] == ranking), None)


def plot(curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = curve["unseen"]["table"]
    counts = sorted(int(c) for c in curve["runs"])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for ranking, colour in (("global", "tab:blue"), ("fused", "tab:orange")):
        ys = [_top1(table, f"n{c}", ranking) for c in counts]
        ax.plot(counts, ys, "o-", color=colour, label=f"retrained, {'global only' if ranking == 'global' else 'fused'}")
        shipped = _top1(table, "shipped", ranking)
        ax.axhline(shipped, color=colour, linestyle="--", linewidth=1,
                   label=f"shipped, {'global only' if ranking == 'global' else 'fused'}")
    for c in counts:  # how much training each point got: the time bound, not the data, may limit it
        steps = curve["runs"][str(c)]["training"]["steps"]
        ax.annotate(f"{steps} steps", (c, _top1(table, f"n{c}", "fused") or 0), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=7)
    ax.set_xlabel("confirmed individuals the project retrained on")
    ax.set_ylabel("top-1 on the unseen individuals")
    u = curve["unseen"]
    ax.set_title(f"nyala-dev: {u['individuals']} individuals never trained on", fontsize=10)
    ax.set_xticks(counts)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--counts", type=int, nargs="+", default=[20, 45, 89])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0],
                    help="`reid retrain --minutes` per count (one value: the same for all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N", help="forgetting check on N synthetic leopards")
    ap.add_argument("--unseen-individuals", type=int, default=0, help="evaluate on this many of the unseen half (0: all)")
    ap.add_argument("--retrain-only", action="store_true", help="stop after the retraining runs")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "retraining-curve.png")
    args = ap.parse_args()
    if len(args.minutes) not in (1, len(args.counts)):
        ap.error("--minutes takes one value or one per count")
    minutes = args.minutes * len(args.counts) if len(args.minutes) == 1 else args.minutes

    from reid.labels import read_labels
    from reid.retrain_gate import evaluate_models, format_table, table
    from reid.settings import Settings, default_model_path

    args.work.mkdir(parents=True, exist_ok=True)
    curve_path = args.work / "curve.json"
    curve = json.loads(curve_path.read_text()) if curve_path.is_file() else {"runs": {}}

    def save() -> None:
        curve_path.write_text(json.dumps(curve, indent=2))

    for count, m in zip(args.counts, minutes, strict=True):
        if str(count) not in curve["runs"]:
            t0 = time.perf_counter()
            curve["runs"][str(count)] = run = _retrain(args, count, m)
            run["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
            save()
            print(json.dumps({k: run[k] for k in ("individuals", "version", "training", "seconds", "peak_rss_mib")}),
                  flush=True)
    if args.retrain_only:
        return 0
    models = {"shipped": default_model_path(),
              **{f"n{c}": Path(curve["runs"][str(c)]["checkpoint"]) for c in sorted(int(c) for c in curve["runs"])}}
    rows = read_labels(args.labels, require_identity=True)
    names = sorted({r.identity for r in rows})
    random.Random(args.seed).shuffle(names)  # the same halves as retrain_nyala.py
    unseen = set(names[len(names) // 2:][: args.unseen_individuals or None])
    settings = Settings.from_env(data_dir=args.work / "unused", model_path=None)
    if curve.get("unseen", {}).get("models") != list(models):
        t0 = time.perf_counter()
        evals = evaluate_models(models, [r for r in rows if r.identity in unseen], settings, seed=args.seed,
                                scratch=args.work / "unseen-scratch", progress=False)
        curve["unseen"] = {"models": list(models), "table": table(evals), "individuals": len(unseen),
                           "noise": {name: ev.noise_against(evals["shipped"]) for name, ev in evals.items()
                                     if name != "shipped"},
                           "seconds": round(time.perf_counter() - t0, 1)}
        save()
    print("unseen individuals:\n" + format_table(curve["unseen"]["table"]), flush=True)
    if args.synthetic and curve.get("synthetic", {}).get("models") != list(models):
        synth_dir = args.work / "synth"
        if not (synth_dir / "labels.csv").is_file():
            proc = subprocess.run([sys.executable, "-m", "reid.cli", "synth", "--individuals", str(args.synthetic),
                                   "--per-individual", "6", "--first-individual", "0", "--easy", "--out",
                                   str(synth_dir)], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
        srows = read_labels(synth_dir / "labels.csv", require_identity=True)
        evals = evaluate_models(models, srows, settings, seed=args.seed, scratch=args.work / "synth-scratch",
                                progress=False)
        curve["synthetic"] = {"models": list(models), "table": table(evals), "individuals": args.synthetic}
        save()
    if "synthetic" in curve:
        print("synthetic leopards (forgetting check):\n" + format_table(curve["synthetic"]["table"]), flush=True)
    plot(curve, args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
