"""Photos that are already crops of the animal: the pipeline with and without crop handling,
against plain RootSIFT + MAGSAC over the whole same-flank gallery, and against the same photos whole.

    python benchmarks/crop_set.py make /tmp/cropset                      # nyala-dev crops + frames
    python benchmarks/crops.py --crops /tmp/cropset/crops/labels.csv --frames /tmp/cropset/frames/labels.csv
    reid synth --individuals 40 --per-individual 6 --easy --closeup --size 320 256 --out /tmp/closeup
    python benchmarks/crops.py --crops /tmp/closeup/labels.csv

One table, EVAL.md protocol: each labels CSV split by sighting (reid.evaluate.split_by_sighting,
no individual held out); every query photo identified alone against the whole gallery (no
sighting pooling, so every row ranks the same photos). Rows:

  (a) crops, crop handling   the pipeline as shipped: crops detected (REID_CROP_DETECT), gallery and queries
  (b) crops, no handling     the same with REID_CROP_DETECT=0: today's masks and scene check on the crops
  (c) RootSIFT + MAGSAC      benchmarks/eval_local_nyala.py `rootsift_pair` (its features, matcher and
                             metrics), every query against every gallery photo of its flank
  (d) whole frames           the same photos uncropped (--frames) through the shipped pipeline
  (a') (--rows a2)           as (a), every photo declared a crop (crop=true), none left to detection

Known queries only (the identity has a gallery photo of the query's flank: eval_local_nyala's
rule, applied to every row). `--identity-share S` keeps the queries of the identities whose
sha1(name) falls in the first S of the hash range (deterministic; gallery kept whole).
Scene check scope `all` (nyala has no stations: with the default `station` it never runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import eval_local_nyala as eln  # noqa: E402

from reid.evaluate import split_by_sighting  # noqa: E402
from reid.labels import LabelRow, read_labels  # noqa: E402


def _known(queries: list[LabelRow], gallery: list[LabelRow]) -> list[LabelRow]:
    have = {(g.identity, (g.viewpoint or "unknown").lower()) for g in gallery}
    return [q for q in queries if (q.identity, (q.viewpoint or "unknown").lower()) in have]


def _subset(queries: list[LabelRow], share: float) -> list[LabelRow]:
    if share >= 1:
        return queries
    return [q for q in queries if int(hashlib.sha1(q.identity.encode()).hexdigest()[:8], 16) < share * 2**32]


def _ranks(truth: list[str], ranked: list[list[str]]) -> dict[str, float]:
    r = np.array([(names.index(t) + 1) if t in names else 10**6 for t, names in zip(truth, ranked, strict=True)])
    return {"top1": float((r <= 1).mean()), "top5": float((r <= 5).mean()), "mrr": float(np.mean(1.0 / r)),
            "n": len(r)}


def pipeline_run(labels_gallery: list[LabelRow], queries: list[LabelRow], *, crop_detect: float | None,
                 work: Path, name: str, declared: bool | None = None) -> tuple[dict[str, float], float]:
    """Enroll the gallery into a fresh data dir, identify each query alone; (metrics, crop share of queries).
    `declared`: every photo is declared a crop (True) or not (False), as crop=true|false does."""
    from dataclasses import replace

    from reid.batch import enroll_labels
    from reid.identify import open_pipeline

    data_dir = work / name
    overrides = {"data_dir": data_dir, "scene_check_scope": "all"}
    if crop_detect is not None:
        overrides["crop_detect"] = crop_detect
    pipeline = open_pipeline(**overrides)
    try:
        t = time.perf_counter()
        enroll_labels(pipeline, name, rows=[replace(r, crop=declared) for r in labels_gallery], progress=False)
        print(f"  {name}: enrolled {len(labels_gallery)} in {time.perf_counter() - t:.0f}s", file=sys.stderr,
              flush=True)
        t = time.perf_counter()
        ranked, crops = [], 0
        for q in queries:
            query = pipeline.load_query(q.file, name=q.path, viewpoint=q.viewpoint, box=q.box, crop=declared)
            (res,) = pipeline.identify([query], top_k=10, audit=False)
            ranked.append([c.identity for c in res.candidates])
            crops += bool(res.crop)
        print(f"  {name}: identified {len(queries)} in {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
    finally:
        pipeline.close()
    return _ranks([q.identity for q in queries], ranked), crops / max(1, len(queries))


def rootsift_run(labels: Path, gallery: list[LabelRow], queries: list[LabelRow], cache: Path) -> dict[str, float]:
    """eval_local_nyala's `rootsift_pair` on these photos: its features, `_pair_job` and `metrics`."""
    kind, variant, cfg = eln.METHODS["rootsift_pair"]
    root = labels.parent

    def row(r: LabelRow) -> eln.Row:
        return eln.Row(r.path, r.identity, (r.viewpoint or "unknown").strip().lower(), r.sighting or r.path)

    g_rows, q_rows = [row(r) for r in gallery], [row(r) for r in queries]
    flanks = sorted({r.viewpoint for r in g_rows + q_rows})
    by_flank = {f: [i for i, g in enumerate(g_rows) if g.viewpoint == f] for f in flanks}
    eln.ensure_features(root, cache, g_rows + q_rows, variant, 2)
    eln._S.clear()
    eln._S.update(cache=cache, variant=variant, queries=q_rows, gallery=g_rows, by_flank=by_flank, cfg=cfg,
                  shortlist=0)
    eln._FEATS.clear()
    t = time.perf_counter()
    with mp.get_context("fork").Pool(2, initializer=eln._init_worker) as pool:
        scores = pool.map(eln._pair_job, range(len(q_rows)), chunksize=4)
    print(f"  rootsift_pair: {len(q_rows)} queries in {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
    t1, t5, mrr, n = eln.metrics(scores, list(range(len(q_rows))), q_rows, g_rows, by_flank)
    return {"top1": t1, "top5": t5, "mrr": mrr, "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=Path, required=True, help="labels CSV of the crops")
    ap.add_argument("--frames", type=Path, default=None, help="labels CSV of the same photos whole (row (d))")
    ap.add_argument("--identity-share", type=float, default=1.0)
    ap.add_argument("--rows", default="a,b,c,d",
                    help="which rows to run (comma list of a, b, c, d; a2: every photo declared a crop)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here, by letter (a, a2, b, c, d)")
    args = ap.parse_args()
    rows_wanted = set(args.rows.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="reid-crops-bench-"))
    try:
        gallery, queries = split_by_sighting(read_labels(args.crops, require_identity=True))
        queries = _subset(_known(queries, gallery), args.identity_share)
        print(f"{args.crops}: gallery {len(gallery)} photos of {len({g.identity for g in gallery})} individuals, "
              f"{len(queries)} known queries (identity share {args.identity_share})", flush=True)
        table: list = []

        rows_json: dict[str, dict] = {}

        def done(name: str, m: dict[str, float], c: float | None) -> None:
            table.append((name, m, c))
            rows_json["a2" if name.startswith("(a')") else name[1]] = {**m, "detected": c, "row": name}
            print(f"  {name}: top-1 {m['top1']:.3f} top-5 {m['top5']:.3f} (n={m['n']})", file=sys.stderr, flush=True)
        # (c) first: its worker processes are forked, and a fork after the pipeline has run
        # (OpenCV's and torch's thread pools) hung them
        if "c" in rows_wanted:
            done("(c) RootSIFT + MAGSAC, whole same-flank gallery",
                 rootsift_run(args.crops, gallery, queries, work / "rootsift"), None)
        if "a" in rows_wanted:
            m, c = pipeline_run(gallery, queries, crop_detect=None, work=work, name="a")
            done("(a) crops, crop handling (detected)", m, c)
        if "a2" in rows_wanted:
            m, c = pipeline_run(gallery, queries, crop_detect=None, work=work, name="a2", declared=True)
            done("(a') crops, declared (crop=true on every photo)", m, c)
        if "b" in rows_wanted:
            m, c = pipeline_run(gallery, queries, crop_detect=0.0, work=work, name="b")
            done("(b) crops, no crop handling (REID_CROP_DETECT=0)", m, c)
        if "d" in rows_wanted and args.frames is not None:
            f_gallery, f_queries = split_by_sighting(read_labels(args.frames, require_identity=True))
            wanted = {q.path.rsplit("/", 1)[-1] + "|" + q.identity for q in queries}
            f_queries = [q for q in f_queries if q.path.rsplit("/", 1)[-1] + "|" + q.identity in wanted]
            m, c = pipeline_run(f_gallery, f_queries, crop_detect=None, work=work, name="d")
            done("(d) the same photos whole, pipeline as shipped", m, c)
        print("\n| row | top-1 | top-5 | MRR | known queries | queries detected as crops |")
        print("|---|---|---|---|---|---|")
        table.sort(key=lambda row: row[0])
        for name, m, c in table:
            print(f"| {name} | {m['top1']:.3f} | {m['top5']:.3f} | {m['mrr']:.3f} | {m['n']} | "
                  f"{'-' if c is None else f'{c:.2f}'} |")
        if args.json:
            args.json.write_text(json.dumps({"crops": str(args.crops), "gallery": len(gallery), "queries": len(queries),
                                             "identity_share": args.identity_share, "rows": rows_json}, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
