"""Local-only (keypoint) identification accuracy on the real nyala-dev photos.

No CNN shortlist: every query is matched against the WHOLE gallery of the same flank and
each identity's score is the max over its gallery images (EVAL.md). Methods:

  sift_pair       plain SIFT (no CLAHE), Lowe ratio 0.8, MAGSAC homography; score = inliers
  rootsift_pair   the same on CLAHE + RootSIFT (reid.keypoints.verify.match_pair)
  lnbnn           one-vs-many LNBNN over the gallery (benchmarks/baselines.py match_shortlist defaults)
  lnbnn_*         LNBNN variants (k, geometry, centre restriction, no identity labels)

Split (EVAL.md, by sighting): per identity, sightings sorted (numerically when they are
numbers); the first floor(n/2) (at least 1) go to the gallery, the rest are queries;
identities with one sighting are gallery only. Left queries only see left gallery images.
Ranks break ties against the true identity (a true score of 0 never counts as a hit).

Features and the exact gallery kNN are cached under --cache, so re-runs and new variants
are fast. At most 2 worker processes.

    python benchmarks/eval_local_nyala.py                 # all methods, all queries
    python benchmarks/eval_local_nyala.py --max-queries 100 --methods lnbnn,lnbnn_k1
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import inspect
import math
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines  # noqa: E402

from reid import imageio  # noqa: E402
from reid.keypoints import extract as kx  # noqa: E402
from reid.keypoints import verify, vote  # noqa: E402

DEFAULT_LABELS = Path("/work/shared/data/nyala-dev/labels.csv")
def _code_hash() -> str:
    """Hash of the matching code without docstrings/comments: edits to text keep the cache."""
    tree = ast.parse("\n".join(Path(m.__file__).read_text(encoding="utf-8") for m in (kx, verify, vote, baselines)))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha1(ast.dump(tree).encode()).hexdigest()


CODE_HASH = _code_hash()
KNN_K = 32  # neighbours cached per query feature (LNBNN needs k+1 identities; headroom for masks)


@dataclass
class Row:
    path: str
    identity: str
    viewpoint: str
    sighting: str


def _sight_key(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    by_id: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_id[r.identity].add(r.sighting)
    gal_s: set[tuple[str, str]] = set()
    for ident, sights in by_id.items():
        s = sorted(sights, key=_sight_key)
        n_gal = len(s) if len(s) < 2 else max(1, len(s) // 2)
        gal_s |= {(ident, x) for x in s[:n_gal]}
    gallery = [r for r in rows if (r.identity, r.sighting) in gal_s]
    queries = [r for r in rows if (r.identity, r.sighting) not in gal_s]
    return gallery, queries


# ----------------------------------------------------------------------------- features

# Feature variants (reid.keypoints.extract.extract kwargs). Explicit ones are fixed for comparisons;
# "default" is whatever extract() does now. Cache folders are named by the resolved
# parameters, so a default that equals an explicit variant reuses its cache.
VARIANTS: dict[str, dict | None] = {
    "sift640": {"rootsift": False, "clahe": False, "upright": False, "max_side": 640},
    "rootsift640": {"upright": False, "max_side": 640},
    "upright640": {"upright": True, "max_side": 640},
    "rootsift320": {"upright": False, "max_side": 320},
    "upright320": {"upright": True, "max_side": 320},
    "upright320_noclahe": {"upright": True, "clahe": False, "max_side": 320},
    "upright240": {"upright": True, "max_side": 240},
    "upright320_f800": {"upright": True, "max_side": 320, "max_features": 800},
    "upright320_f500": {"upright": True, "max_side": 320, "max_features": 500},
    "upright400": {"upright": True, "max_side": 400},
    "default": None,
}


def _resolved(variant: str) -> dict:
    sig = inspect.signature(kx.extract)
    kw = {n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and n != "box"}
    kw.update(VARIANTS[variant] or {})
    return kw


def _variant_dir(variant: str) -> str:
    mine = _resolved(variant)
    for name, kw in VARIANTS.items():
        if kw is not None and _resolved(name) == mine:
            return name
    return "default-" + hashlib.sha1(repr(sorted(mine.items())).encode()).hexdigest()[:8]


def _feat_path(cache: Path, variant: str, rel: str) -> Path:
    return cache / "feat" / _variant_dir(variant) / (rel.replace("/", "__") + ".npz")


def _extract_job(args: tuple[str, str, str, str]) -> float:
    root, cache, variant, rel = args
    out = _feat_path(Path(cache), variant, rel)
    if out.exists():
        return 0.0
    rgb = imageio.load(Path(root) / rel).rgb
    t = time.perf_counter()
    f = kx.extract(rgb, **_resolved(variant))
    dt = time.perf_counter() - t
    kx.save_features(out, f)
    return dt


def ensure_features(root: Path, cache: Path, rows: list[Row], variant: str, workers: int) -> None:
    jobs = [(str(root), str(cache), variant, r.path) for r in rows]
    todo = [j for j in jobs if not _feat_path(cache, variant, j[3]).exists()]
    if not todo:
        return
    t = time.perf_counter()
    with mp.get_context("fork").Pool(workers) as pool:
        times = pool.map(_extract_job, todo, chunksize=8)
    print(f"  extracted {len(todo)} x {variant} in {time.perf_counter() - t:.0f}s "
          f"({1000 * np.mean(times):.0f} ms/image in-process)", flush=True)


_FEATS: dict[tuple[str, str], kx.Features] = {}


def feats(cache: Path, variant: str, rel: str) -> kx.Features:
    key = (variant, rel)
    if key not in _FEATS:
        _FEATS[key] = kx.load_features(_feat_path(cache, variant, rel))
    return _FEATS[key]


# ----------------------------------------------------------------------------- methods

# Worker state (set before fork so children share it copy-on-write)
_S: dict = {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # two worker processes already fill the two cores


def _allowed(qi: int) -> list[int]:
    """Gallery indices this query is compared with: its flank, or a simulated shortlist."""
    s = _S
    q = s["queries"][qi]
    gids = s["by_flank"][q.viewpoint]
    n = s.get("shortlist", 0)
    if not n:
        return gids
    # simulated CNN shortlist that contains the truth: the true identity + n-1 others,
    # drawn deterministically per query
    others = sorted({s["gallery"][g].identity for g in gids} - {q.identity})
    rng = np.random.default_rng(int(hashlib.sha1(q.path.encode()).hexdigest()[:8], 16))
    pick = set(rng.choice(others, size=min(n - 1, len(others)), replace=False).tolist()) | {q.identity}
    return [g for g in gids if s["gallery"][g].identity in pick]


def _scatter(qi: int, allowed: list[int], vals: list[float]) -> np.ndarray:
    """Scores over the flank's gallery; images outside the shortlist get -inf (not ranked)."""
    gids = _S["by_flank"][_S["queries"][qi].viewpoint]
    pos = {g: i for i, g in enumerate(gids)}
    out = np.full(len(gids), -np.inf, np.float32)
    for g, v in zip(allowed, vals, strict=True):
        out[pos[g]] = v
    return out


def _pair_job(qi: int) -> np.ndarray:
    s = _S
    q = s["queries"][qi]
    cfg = dict(s["cfg"])
    radius = cfg.pop("centre", None)
    fq = feats(s["cache"], s["variant"], q.path)
    allowed = _allowed(qi)
    gal = [feats(s["cache"], s["variant"], s["gallery"][g].path) for g in allowed]
    if radius is not None:
        fq = _sub(fq, _centre_keep(fq, radius))
        gal = [_sub(g, _centre_keep(g, radius)) for g in gal]
    return _scatter(qi, allowed, [verify.match_pair(fq, g, **cfg).score for g in gal])


def _knn_path(cache: Path, variant: str, rel: str) -> Path:
    return cache / "knn" / _variant_dir(variant) / (rel.replace("/", "__") + ".npz")


def ensure_knn(cache: Path, variant: str, gallery: list[Row], queries: list[Row],
               by_flank: dict[str, list[int]], qidx: list[int]) -> None:
    """Exact squared-L2 kNN of every query feature over its flank's whole gallery (fp32 GEMM)."""
    for flank, gids in by_flank.items():
        todo = [i for i in qidx if queries[i].viewpoint == flank
                and not _knn_path(cache, variant, queries[i].path).exists()]
        if not todo:
            continue
        base = np.concatenate([feats(cache, variant, gallery[g].path).descriptors for g in gids]).astype(np.float32)
        t = time.perf_counter()
        for n, i in enumerate(todo):
            fq = feats(cache, variant, queries[i].path)
            if len(fq):
                d, nn = vote.knn_search(np.ascontiguousarray(fq.descriptors, np.float32), base, KNN_K, "flat")
            else:
                d, nn = np.zeros((0, KNN_K), np.float32), np.zeros((0, KNN_K), np.int64)
            out = _knn_path(cache, variant, queries[i].path)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp.npz")
            np.savez(tmp, d=d.astype(np.float32), nn=nn.astype(np.int32))
            os.replace(tmp, out)
            if n % 25 == 0:
                el = time.perf_counter() - t
                print(f"  knn {flank}: {n + 1}/{len(todo)} ({el / (n + 1):.1f} s/query)", flush=True)


def _centre_keep(f: kx.Features, radius: float) -> np.ndarray:
    """Keypoints inside a centred ellipse (radius 1 = touching the image's edges)."""
    w, h = f.image_size
    if len(f) == 0:
        return np.zeros(0, bool)
    dx = (f.keypoints[:, 0] - (w - 1) / 2) / (w / 2)
    dy = (f.keypoints[:, 1] - (h - 1) / 2) / (h / 2)
    return dx * dx + dy * dy <= radius * radius


def _sub(f: kx.Features, keep: np.ndarray) -> kx.Features:
    return kx.Features(f.keypoints[keep], f.descriptors[keep], f.image_size,
                          None if f.scales is None else f.scales[keep],
                          None if f.angles is None else f.angles[keep])


def _lnbnn_job(qi: int) -> np.ndarray:
    s = _S
    q = s["queries"][qi]
    cfg = dict(s["cfg"])
    radius = cfg.pop("centre", None)
    use_ids = cfg.pop("use_identities", True)
    fq = feats(s["cache"], s["variant"], q.path)
    if s.get("shortlist"):
        # the service's situation: one index over the shortlisted images only
        allowed = _allowed(qi)
        gal = [feats(s["cache"], s["variant"], s["gallery"][g].path) for g in allowed]
        if radius is not None:
            fq = _sub(fq, _centre_keep(fq, radius))
            gal = [_sub(g, _centre_keep(g, radius)) for g in gal]
        idents = [s["gallery"][g].identity for g in allowed] if use_ids else None
        ms = baselines.match_shortlist(fq, gal, identities=idents, **cfg)
        return _scatter(qi, allowed, [m.score for m in ms])
    gids = s["by_flank"][q.viewpoint]
    gal = [feats(s["cache"], s["variant"], s["gallery"][g].path) for g in gids]
    z = np.load(_knn_path(s["cache"], s["variant"], q.path))
    d, nn = z["d"], z["nn"].astype(np.int64)
    if radius is not None:
        # restrict both sides to a central ellipse: drop query rows, invalidate gallery points
        keep_g = np.concatenate([_centre_keep(g, radius) for g in gal])
        keep_q = _centre_keep(fq, radius)
        fq, d, nn = _sub(fq, keep_q), d[keep_q], nn[keep_q]
        bad = (nn >= 0) & ~keep_g[np.maximum(nn, 0)]
        nn = np.where(bad, -1, nn)
        # re-index into the concatenation of the kept gallery points
        remap = np.cumsum(keep_g) - 1
        nn = np.where(nn >= 0, remap[np.maximum(nn, 0)], -1)
        gal = [_sub(g, _centre_keep(g, radius)) for g in gal]
    idents = [s["gallery"][g].identity for g in gids] if use_ids else None
    ms = baselines.match_shortlist(fq, gal, identities=idents, neighbours=(d, nn), **cfg)
    return np.array([m.score for m in ms], np.float32)


METHODS: dict[str, tuple[str, str, dict]] = {
    # name: (kind, feature variant, match kwargs + eval flags "centre", "use_identities")
    "sift_pair": ("pair", "sift640", {}),  # (a) the baseline
    "rootsift_pair": ("pair", "rootsift640", {}),  # (b)
    "rootsift_pair_centre": ("pair", "rootsift640", {"centre": 0.9}),
    "lnbnn_rootsift640": ("lnbnn", "rootsift640", {}),  # (c) on (b)'s features
    "default_pair": ("pair", "default", {}),  # pairwise on the default features
    "lnbnn": ("lnbnn", "default", {}),  # (c) reid.keypoints defaults = what match_shortlist does
    "lnbnn_centre": ("lnbnn", "default", {"centre": 0.9}),  # (d) + central-ellipse restriction
    "lnbnn_centre08": ("lnbnn", "default", {"centre": 0.8}),
    "lnbnn_kdtree": ("lnbnn", "default", {"index": "kdtree"}),  # index only matters with --shortlist
    "lnbnn_flat": ("lnbnn", "default", {"index": "flat"}),
    "lnbnn_k1": ("lnbnn", "default", {"k": 1}),
    "lnbnn_k2": ("lnbnn", "default", {"k": 2}),
    "lnbnn_k8": ("lnbnn", "default", {"k": 8}),
    "lnbnn_noexcl": ("lnbnn", "default", {"exclusive": False}),
    "lnbnn_noids": ("lnbnn", "default", {"use_identities": False}),
    "lnbnn_sq": ("lnbnn", "default", {"squared": True}),
    "lnbnn_nogeo": ("lnbnn", "default", {"model": "none"}),
    "lnbnn_affine": ("lnbnn", "default", {"model": "affine"}),
    "lnbnn_t05": ("lnbnn", "default", {"thresh_frac": 0.05}),
    "lnbnn_upright640": ("lnbnn", "upright640", {}),
    "lnbnn_rootsift320": ("lnbnn", "rootsift320", {}),
    "lnbnn_upright320": ("lnbnn", "upright320", {}),
    "lnbnn_upright320_noclahe": ("lnbnn", "upright320_noclahe", {}),
    "lnbnn_upright240": ("lnbnn", "upright240", {}),
    "lnbnn_upright320_f800": ("lnbnn", "upright320_f800", {}),
    "lnbnn_upright320_f500": ("lnbnn", "upright320_f500", {}),
    "lnbnn_upright400": ("lnbnn", "upright400", {}),
}
DEFAULT_METHODS = "sift_pair,rootsift_pair,lnbnn_rootsift640,default_pair,lnbnn,lnbnn_centre"


def metrics(scores: list[np.ndarray], qidx: list[int], queries: list[Row], gallery: list[Row],
            by_flank: dict[str, list[int]]) -> tuple[float, float, float, int]:
    top1 = top5 = rr = 0.0
    n = 0
    for s, qi in zip(scores, qidx, strict=True):
        q = queries[qi]
        gids = by_flank[q.viewpoint]
        best: dict[str, float] = {}
        for g, v in zip(gids, s, strict=True):
            if v == -np.inf:
                continue  # outside this query's (simulated) shortlist
            ident = gallery[g].identity
            best[ident] = max(best.get(ident, -math.inf), float(v))
        if q.identity not in best:
            continue  # not a "known" query for this flank
        n += 1
        t = best[q.identity]
        # ties against the truth: a zero score ties with every unmatched identity
        rank = 1 + sum(1 for i, v in best.items() if i != q.identity and v >= t)
        top1 += rank <= 1
        top5 += rank <= 5
        rr += 1.0 / rank
    return top1 / max(n, 1), top5 / max(n, 1), rr / max(n, 1), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/reid_local_eval"))
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--max-queries", type=int, default=0, help="deterministic subsample (0 = all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shortlist", type=int, default=0,
                    help="compare each query only with N identities (truth + N-1 random), as after a "
                         "CNN shortlist; 0 = the whole same-flank gallery")
    args = ap.parse_args()
    workers = max(1, min(2, args.workers))
    root = args.labels.parent
    with open(args.labels, newline="", encoding="utf-8") as fh:
        rows = [Row(r["path"], r["identity"], (r.get("viewpoint") or "unknown").strip().lower(),
                    r.get("sighting") or r["path"]) for r in csv.DictReader(fh)]
    gallery, queries = split(rows)
    flanks = sorted({r.viewpoint for r in rows})
    by_flank = {f: [i for i, g in enumerate(gallery) if g.viewpoint == f] for f in flanks}
    qidx = list(range(len(queries)))
    if args.max_queries and args.max_queries < len(qidx):
        # deterministic subsample by hashed path
        qidx = sorted(qidx, key=lambda i: hashlib.sha1(queries[i].path.encode()).hexdigest())[: args.max_queries]
        qidx.sort()
    print(f"gallery {len(gallery)} images / {len({g.identity for g in gallery})} ids, "
          f"queries {len(qidx)} of {len(queries)}", flush=True)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results = []
    for name in methods:
        kind, variant, cfg = METHODS[name]
        ensure_features(root, args.cache, gallery + [queries[i] for i in qidx], variant, workers)
        # cached scores are keyed by the method, the query set and the matcher's source code
        key = hashlib.sha1((str(qidx) + repr(cfg) + _variant_dir(variant) + CODE_HASH).encode()).hexdigest()[:10]
        res_path = args.cache / "scores" / f"{name}_s{args.shortlist}_{len(qidx)}_{key}.npz"
        t = time.perf_counter()
        if res_path.exists():
            z = np.load(res_path)
            scores = [z[str(i)] for i in qidx]
        else:
            _S.clear()
            _S.update(cache=args.cache, variant=variant, queries=queries, gallery=gallery,
                      by_flank=by_flank, cfg=cfg, shortlist=args.shortlist)
            if kind == "lnbnn":
                if not args.shortlist:
                    ensure_knn(args.cache, variant, gallery, queries, by_flank, qidx)
                job = _lnbnn_job
            else:
                job = _pair_job
            _FEATS.clear()  # don't fork a big parent cache: workers load what they need
            with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
                scores = pool.map(job, qidx, chunksize=4)
            res_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(res_path, **{str(i): s for i, s in zip(qidx, scores, strict=True)})
        dt = time.perf_counter() - t
        t1, t5, mrr, n = metrics(scores, qidx, queries, gallery, by_flank)
        results.append((name, t1, t5, mrr, n, dt))
        print(f"{name:16s} top-1 {t1:.3f}  top-5 {t5:.3f}  MRR {mrr:.3f}  (n={n}, {dt:.0f}s)", flush=True)

    print("\n| method | top-1 | top-5 | MRR | known queries |")
    print("|---|---|---|---|---|")
    for name, t1, t5, mrr, n, _ in results:
        print(f"| {name} | {t1:.3f} | {t5:.3f} | {mrr:.3f} | {n} |")
    print("\ncommand: python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]))


if __name__ == "__main__":
    main()
