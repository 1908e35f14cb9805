#!/usr/bin/env python
"""Does retraining on a project's confirmed individuals help with individuals it never saw?

    nice -n 10 python benchmarks/retrain_nyala.py --labels ../shared/data/nyala-dev/labels.csv \
        --work /tmp/rt-nyala --minutes 12 [--individuals 90] [--unseen-individuals 30] [--synthetic 12]

1. The individuals are split in two halves (seeded): the first half is a project's confirmed
   catalogue (enrolled into WORK/project with the shipped model), the second is never seen.
2. `reid retrain --minutes M` on the project (a subprocess, as a user runs it): time, peak
   memory and the gate's held-out table come from its run record. With --individuals N only
   N of the first half are enrolled (the accuracy-vs-individuals curve).
3. The unseen half, split by sighting with a fifth held out as new (EVAL.md), is identified
   by the shipped model and by the retrained one, global embedding alone and fused, each
   scored with a 2-fold cross-fitted calibration (reid.retrain_gate.evaluate_models).
4. --synthetic N: the same comparison on N synthetic leopards (reid synth --easy, seeds 0..N-1,
   never used in training): what retraining on one population costs on coats it knew.

nyala-dev is evaluation data: the retrained model stays in WORK (a scratch dir), never shipped.
Prints a JSON record per step and a markdown table at the end (WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def reid(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "REID_MODEL": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "reid.cli", *args], capture_output=True, text=True, env=full,
                          cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--individuals", type=int, default=0, help="enroll only this many of the first half (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also the forgetting check on N synthetic leopards (seeds 0..N-1; 0: skip)")
    ap.add_argument("--skip-eval", action="store_true", help="retrain only (the curve's gate numbers)")
    ap.add_argument("--unseen-individuals", type=int, default=0,
                    help="evaluate on only this many of the unseen half (0: all; a shared machine's time)")
    args = ap.parse_args()

    from reid import model_versions as mv
    from reid.labels import read_labels, write_labels
    from reid.retrain_gate import evaluate_models, format_table, table
    from reid.settings import Settings, default_model_path

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2))

    rows = read_labels(args.labels, require_identity=True)
    names = sorted({r.identity for r in rows})
    random.Random(args.seed).shuffle(names)
    half = len(names) // 2
    project_names = names[:half][: args.individuals or None]
    unseen_names = set(names[half:][: args.unseen_individuals or None])
    project_rows = [r for r in rows if r.identity in set(project_names)]
    unseen_rows = [r for r in rows if r.identity in unseen_names]
    project = work / "project"
    if "enroll" not in results:
        csv_path = write_labels(work / "project.csv", project_rows)
        t0 = time.perf_counter()
        # keypoints are not needed to train: the project's catalogue is enrolled without them
        proc = reid("enroll", str(csv_path), "--data-dir", str(project), "-q", env={"REID_LOCAL_MATCHING": "0"})
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
            return 2
        results["enroll"] = {"individuals": len(project_names), "photos": len(project_rows),
                             "seconds": round(time.perf_counter() - t0, 1), "out": proc.stdout.strip()}
        save()
        print(json.dumps(results["enroll"]), flush=True)
    if "retrain" not in results:
        t0 = time.perf_counter()
        proc = reid("retrain", "--data-dir", str(project), "--minutes", str(args.minutes), "--json")
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 2
        record = json.loads(proc.stdout)
        record["command_seconds"] = round(time.perf_counter() - t0, 1)  # incl. promotion's re-embedding
        results["retrain"] = record
        save()
        print(proc.stderr[-3000:], file=sys.stderr)
        print(format_table(record["held_out_table"]), flush=True)
    record = results["retrain"]
    if args.skip_eval:
        return 0
    version_path = mv.checkpoint_path(project, record["version"])
    models = {"shipped": default_model_path(), "retrained": version_path}
    settings = Settings.from_env(data_dir=work / "unused", model_path=None)
    if "unseen" not in results:
        t0 = time.perf_counter()
        evals = evaluate_models(models, unseen_rows, settings, new_fraction=0.2, seed=args.seed, progress=False,
                                scratch=work / "unseen-scratch")
        results["unseen"] = {"table": table(evals), "seconds": round(time.perf_counter() - t0, 1),
                             "individuals": len(unseen_names), "photos": len(unseen_rows)}
        save()
    print("unseen individuals:\n" + format_table(results["unseen"]["table"]), flush=True)
    if args.synthetic and "synthetic" not in results:
        synth_dir = work / "synth"
        if not (synth_dir / "labels.csv").is_file():
            proc = reid("synth", "--individuals", str(args.synthetic), "--per-individual", "6", "--first-individual", "0",
                        "--easy",
                        "--out", str(synth_dir))
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 2
        srows = read_labels(synth_dir / "labels.csv", require_identity=True)
        t0 = time.perf_counter()
        evals = evaluate_models(models, srows, settings, new_fraction=0.2, seed=args.seed, progress=False,
                                scratch=work / "synth-scratch")
        results["synthetic"] = {"table": table(evals), "seconds": round(time.perf_counter() - t0, 1)}
        save()
    if "synthetic" in results:
        print("synthetic leopards (forgetting check):\n" + format_table(results["synthetic"]["table"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
