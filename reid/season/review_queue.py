"""A season's findings as review items (reid.review) for a person to decide:

* each putative new individual (a group of `new` animals, reid.season.grouping) becomes ONE
  multi-photo item: "these 9 photos look like one new leopard", decided `new` with a name
  (every photo enrolled under one new individual, each with its own flank) or confirmed as a
  known one;
* each flank an encounter linked to a known individual (reid.season.outputs flank links)
  becomes a multi-photo item pre-filled with that individual: the machine proposes, a person
  confirms (nothing is enrolled before), so a wrong link never files a photo under the wrong
  animal.

Queueing is idempotent (an item is keyed by its first photo), so a resumed or repeated run
refreshes pending items and leaves decided ones alone.
"""

from __future__ import annotations

import json
from typing import Any

from reid.identify import Pipeline
from reid.review import GroupPhoto, record_group

SOURCE_GROUP = "season-group"
SOURCE_LINK = "season-flank-link"


def _photo(pipeline: Pipeline, plan: Any, m: dict[str, Any], sighting: str) -> GroupPhoto:
    from reid.season.outputs import _crop_of

    photo = plan.photo
    dep = photo.deployment
    common = {"name": photo.path, "viewpoint": m["flank"], "sighting": sighting, "station": photo.station,
              "camera": photo.camera, "timestamp": m["timestamp"] or None,
              "lat": dep.lat if dep else None, "lon": dep.lon if dep else None}
    if m["t"] is None:  # a photo: its original file and the box
        return GroupPhoto(path=photo.file, box=tuple(m["box"]) if m["box"] else None, **common)
    return GroupPhoto(rgb=_crop_of(plan, m, pipeline), **common)  # a video frame: the crop


def _season_name(plans_by_path: dict[str, Any]) -> str:
    plan = next(iter(plans_by_path.values()))
    return plan.photo.file.parents[len(plan.photo.path.split("/")) - 1].name


def queue_groups(pipeline: Pipeline, by_group: dict[str, list[dict[str, Any]]], plans_by_path: dict[str, Any],
                 encounter_of: dict[str, str]) -> list[int]:
    """One pending review item per putative new individual; returns the item ids (group order)."""
    if not by_group:
        return []
    season = _season_name(plans_by_path)
    ids = []
    for g in sorted(by_group):
        members = sorted(by_group[g], key=lambda m: m["key"])
        photos = [_photo(pipeline, plans_by_path[m["path"]], m,
                         f"{season}:{encounter_of.get(m['key']) or m['animal']}") for m in members]
        item = record_group(pipeline, photos, label=f"{season} {g}", source=SOURCE_GROUP)
        if item is not None:
            ids.append(item.id)
    return ids


def queue_flank_links(pipeline: Pipeline, links: list[dict[str, Any]], plans_by_path: dict[str, Any]) -> list[int]:
    """One review item per (individual, encounter) whose encounter showed a flank the catalogue
    lacks, proposing that individual (candidate 1, with the linking evidence); nothing enrolled."""
    if not links:
        return []
    from reid.catalog import now_iso

    season = _season_name(plans_by_path)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for link in links:
        by_key.setdefault((link["identity"], link["encounter"]), []).append(link)
    ids = []
    for (name, encounter), members in sorted(by_key.items()):
        ind = pipeline.catalog.individual_by_name(name)
        photos = [_photo(pipeline, plans_by_path[m["member"]["path"]], m["member"], f"{season}:{encounter}")
                  for m in sorted(members, key=lambda m: m["member"]["key"])]
        item = record_group(pipeline, photos, label=f"{season} {encounter} paired-camera link to {name}",
                            source=SOURCE_LINK)
        if item is None or item.status != "pending":
            continue
        best = members[0]
        image_id = _best_image(pipeline, ind.id, best["linked_flank"])
        candidate = {"rank": 1, "individual_id": ind.id, "identity": ind.name, "probability": best["probability"],
                     "image_id": image_id, "viewpoint": best["linked_flank"], "inliers": best["inliers"],
                     "cosine": 0.0}
        with pipeline.catalog.transaction() as con:
            con.execute("UPDATE review_items SET verdict = 'review', candidates = ?, updated_at = ? WHERE id = ?",
                        (json.dumps([candidate]), now_iso(), item.id))
        ids.append(item.id)
    return ids


def _best_image(pipeline: Pipeline, individual_id: int, flank: str) -> int:
    """The individual's photo of the flank that was matched (what the reviewer compares with)."""
    images = pipeline.catalog.images_of(individual_id)
    same = [r for r in images if r.viewpoint == flank] or images
    return min(r.id for r in same)


__all__ = ["SOURCE_GROUP", "SOURCE_LINK", "queue_flank_links", "queue_groups"]
