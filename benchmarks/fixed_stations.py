#!/usr/bin/env python
"""Fixed camera stations: does the scene check keep a resident's re-sightings and still stop
wrong matches made of a shared background?

    reid synth --individuals 40 --per-individual 6 --easy --same-place --out /tmp/spe
    python benchmarks/fixed_stations.py /tmp/spe/labels.csv [--new-fraction 0.2]

The labels are split by sighting (EVAL.md, `reid split`: a share of the individuals held
out as new), the gallery is enrolled once into a temporary data dir, and the queries are
identified with the station given (as a camera trap gives it) under each scene-check
variant. Queries fall into:

- returning: a known individual photographed at a station where the gallery has it already
  (same animal, same place: the scene check must not take its spots);
- elsewhere: a known individual at a station where the gallery does not have it;
- stranger: an individual absent from the gallery, at a station where the gallery has other
  animals (different animal, same place: the background must not make a `match`).

Printed per variant: top-1 and correct `match` of returning and elsewhere queries, how many
re-sightings that are rank 1 with the check off lost rank 1 ("lost"; in --json also
"lost_match": right `match` with the check off, not with it), wrong `match`
verdicts (any `match` of a stranger, or a known query matched to another animal) and how
many of those name an animal whose evidence photo is from the query's station ("shared
place"), and the whole split's top-1, new-individual AUROC and decision accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from reid.evaluate import compute_metrics, identify_split, split_by_sighting
from reid.identify import Pipeline
from reid.labels import read_labels, write_labels
from reid.settings import Settings

VARIANTS = {  # key in --json: (row name, settings changed)
    "off": ("off (REID_SCENE_CHECK=0)", {"scene_check_candidates": 0}),
    "old": ("old: any spot on the place (REID_SCENE_CHECK_ANIMAL=0)", {"scene_check_animal": 0.0}),
    "default": ("new default: background spots only", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--new-fraction", type=float, default=0.2)
    ap.add_argument("--scope", default="station", choices=("station", "all"), help="REID_SCENE_CHECK_SCOPE")
    ap.add_argument("--json", type=Path, default=None, help="also write the table's numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = read_labels(args.labels, require_identity=True)
    gallery, queries = split_by_sighting(rows, new_fraction=args.new_fraction)
    at = {(r.identity, r.station) for r in gallery}
    gallery_stations = {r.station for r in gallery}
    known = {r.identity for r in gallery}
    kind = ["returning" if (r.identity, r.station) in at else "elsewhere" if r.identity in known
            else "stranger" if r.station in gallery_stations else "stranger, new station" for r in queries]
    print(f"{args.labels}: {len(gallery)} gallery photos, {len(queries)} queries "
          f"({kind.count('returning')} returning, {kind.count('elsewhere')} elsewhere, "
          f"{kind.count('stranger')} strangers at a gallery station, "
          f"{kind.count('stranger, new station')} strangers elsewhere); scope {args.scope}")
    with tempfile.TemporaryDirectory(prefix="fixed-stations-") as tmp:
        gallery_csv = args.labels.parent / f".fixed-stations-gallery-{Path(tmp).name}.csv"
        write_labels(gallery_csv, gallery)
        try:
            base = Settings.from_env(data_dir=Path(tmp), scene_check_scope=args.scope)
            top1_off: list[bool] | None = None
            match_off: list[bool] | None = None
            out: dict = {"labels": str(args.labels), "gallery": len(gallery), "queries": len(queries),
                         "kinds": {k: kind.count(k) for k in dict.fromkeys(kind)}, "variants": {}}
            header = ("variant", "returning top-1", "returning match", "lost", "elsewhere top-1",
                      "wrong match (shared place)", "stranger match", "top-1", "AUROC", "decision acc.")
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
            for key, (name, change) in VARIANTS.items():
                pipe = Pipeline(base.replace(**change))
                run = identify_split(pipe, gallery_csv, gallery, queries, fetch=5, progress=False)
                top1 = [bool(res.candidates) and res.candidates[0].identity == r.identity
                        for res, r in zip(run.results, queries, strict=True)]
                matched = [res.decision == "match" for res in run.results]
                wrong = [m and not t for m, t in zip(matched, top1, strict=True)]
                shared = sum(w and pipe.catalog.get_image(res.candidates[0].image_id).station == r.station
                             for w, res, r in zip(wrong, run.results, queries, strict=True))
                right_match = [a and b for a, b in zip(matched, top1, strict=True)]
                top1_off = top1_off or top1
                match_off = match_off or right_match
                lost = sum(o and not t and k == "returning" for o, t, k in zip(top1_off, top1, kind, strict=True))
                lost_match = sum(o and not t and k == "returning"
                                 for o, t, k in zip(match_off, right_match, kind, strict=True))

                def share(flags: list[bool], of: str) -> str:
                    sel = [f for f, k in zip(flags, kind, strict=True) if k == of]
                    return f"{sum(sel)}/{len(sel)}"

                m = compute_metrics(run.results, run.truth, gallery_identities=run.known)
                strangers = [mt for mt, k in zip(matched, kind, strict=True) if k.startswith("stranger")]
                print(f"| {name} | {share(top1, 'returning')} | {share(right_match, 'returning')} | {lost} | "
                      f"{share(top1, 'elsewhere')} | {sum(wrong)} ({shared}) | {sum(strangers)}/{len(strangers)} | "
                      f"{m['top1']:.3f} | {m['new_auroc']:.3f} | {m['decision_accuracy']:.3f} |")
                out["variants"][key] = {
                    "returning_top1": share(top1, "returning"), "returning_match": share(right_match, "returning"),
                    "lost": lost, "lost_match": lost_match, "elsewhere_top1": share(top1, "elsewhere"),
                    "wrong_match": sum(wrong), "wrong_match_shared_place": shared,
                    "stranger_match": f"{sum(strangers)}/{len(strangers)}", "top1": m["top1"],
                    "new_auroc": m["new_auroc"], "decision_accuracy": m["decision_accuracy"]}
                pipe.close()
            if args.json:
                args.json.write_text(json.dumps(out, indent=1))
        finally:
            gallery_csv.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
