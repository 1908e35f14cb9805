"""How much review a batch leaves, and how often the right animal is among the candidates shown.

After `reid batch QUERIES.csv --data-dir D` every identified photo is a review item in D
(pending, or auto-accepted for a `match`). Per machine verdict this prints: items, whether a
person must review them, how many show an animal that is in the gallery, and the reviewer's
recall: for those, the share where the right individual is among the candidates the review
page shows (the first 5) and where it is the first. Items of animals not in the gallery
(newcomers) have no right candidate: the right decision there is `new`.

    python benchmarks/review_nyala.py --data-dir /tmp/review-nyala/data \
        --labels /tmp/review-nyala/split/queries.csv [--shown 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True, help="the queries CSV the batch ran on (with identity)")
    ap.add_argument("--gallery", type=Path, default=None, help="gallery CSV (default: gallery.csv beside --labels)")
    ap.add_argument("--shown", type=int, default=5, help="candidates the review page shows (default 5)")
    args = ap.parse_args()

    with open(args.labels, newline="", encoding="utf-8") as fh:
        truth = {row["path"]: row["identity"] for row in csv.DictReader(fh)}
    gallery_csv = args.gallery or args.labels.with_name("gallery.csv")
    with open(gallery_csv, newline="", encoding="utf-8") as fh:
        known = {row["identity"] for row in csv.DictReader(fh)}
    con = sqlite3.connect(args.data_dir / "catalog.sqlite")
    rows = con.execute("SELECT file_name, verdict, status, candidates, sighting FROM review_items").fetchall()

    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sightings: dict[str, set[str]] = defaultdict(set)
    for file_name, verdict, status, candidates, sighting in rows:
        if file_name not in truth:
            continue
        s = stats[verdict]
        s["items"] += 1
        s["pending"] += status != "auto"
        sightings[verdict].add(sighting or file_name)
        identity = truth[file_name]
        if identity not in known:
            s["newcomers"] += 1
            continue
        s["known"] += 1
        names = [c["identity"] for c in json.loads(candidates)][: args.shown]
        s["shown_right"] += identity in names
        s["first_right"] += bool(names) and names[0] == identity

    total = sum(s["items"] for s in stats.values())
    print(f"{int(total)} review items from {len(truth)} queries ({args.labels}); candidates shown: {args.shown}")
    print("| verdict | items | person must review | sightings | known animal | right one among shown "
          "(reviewer's recall) | right one first | newcomers |")
    print("|---|---|---|---|---|---|---|---|")
    agg: dict[str, float] = defaultdict(float)
    for verdict in ("match", "review", "new"):
        s = stats.get(verdict)
        if not s:
            continue
        for k, v in s.items():
            agg[k] += v
        print(f"| {verdict} | {int(s['items'])} | {int(s['pending'])} | {len(sightings[verdict])} | {int(s['known'])} | "
              f"{_share(s['shown_right'], s['known'])} | {_share(s['first_right'], s['known'])} | {int(s['newcomers'])} |")
    print(f"| all | {int(agg['items'])} | {int(agg['pending'])} | {sum(len(v) for v in sightings.values())} | "
          f"{int(agg['known'])} | {_share(agg['shown_right'], agg['known'])} | {_share(agg['first_right'], agg['known'])} "
          f"| {int(agg['newcomers'])} |")


def _share(n: float, d: float) -> str:
    return f"{n / d:.3f} ({int(n)}/{int(d)})" if d else "-"


if __name__ == "__main__":
    main()
