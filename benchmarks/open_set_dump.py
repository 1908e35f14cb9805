#!/usr/bin/env python
"""Identify a split's queries AND its gallery photos (against the gallery), keeping 50
candidates each with their raw evidence, for the open-set study (benchmarks/open_set_eval.py).

    reid split LABELS.csv --out-dir S --new-fraction 0.2
    python benchmarks/open_set_dump.py --gallery S/gallery.csv --queries S/queries.csv \
        --data-dir D --out dump.json

The gallery photos identified against the gallery are where each gallery individual's
impostor scores come from (its evidence against photos of OTHER individuals): no query
label is used for them. D is filled with the gallery (reused when already filled).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

from reid.batch import BatchItem, enroll_labels, iter_identified
from reid.identify import open_pipeline
from reid.labels import read_labels


def _dump(pipe, rows, top_k: int) -> list[dict]:
    items = [BatchItem(path=r.path, file=r.file, row=r) for r in rows]
    out = []
    for outcome in iter_identified(pipe, items, top_k=top_k, progress=False, audit=False):
        row = outcome.item.row
        res = outcome.identification
        out.append({"path": row.path, "identity": row.identity, "sighting": row.sighting,
                    "viewpoint": row.viewpoint, "decision": res.decision,
                    "candidates": [[c.identity, c.score, c.cosine, c.local_score, c.inliers]
                                   for c in res.candidates]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallery", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--identity-share", type=float, default=1.0,
                    help="keep the photos of this share of individuals (by a hash of the name; all photos of "
                    "each kept individual, known and new alike), to fit a busy machine's time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pipe = open_pipeline(data_dir=args.data_dir)
    gallery = read_labels(args.gallery, require_identity=True)
    enroll_labels(pipe, args.gallery, rows=gallery, progress=False)
    def kept(identity: str | None, path: str) -> bool:
        key = (identity or path).encode()
        return int(hashlib.sha256(b"subset:" + key).hexdigest(), 16) % 1000 < args.identity_share * 1000

    gallery_ids = sorted({r.identity for r in gallery})
    queries = _dump(pipe, [r for r in read_labels(args.queries) if kept(r.identity, r.path)], args.top_k)
    print(f"queries identified: {len(queries)}", flush=True)
    # written now as well: the gallery pass below is as long again
    args.out.write_text(json.dumps({"gallery_identities": gallery_ids, "queries": queries, "gallery_self": []}))
    self_id = _dump(pipe, [r for r in gallery if kept(r.identity, r.path)], args.top_k)
    args.out.write_text(json.dumps({"gallery_identities": gallery_ids, "queries": queries, "gallery_self": self_id}))
    print(f"wrote {args.out}: {len(queries)} queries, {len(self_id)} gallery photos")
    pipe.close()


if __name__ == "__main__":
    main()
