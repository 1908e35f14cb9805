"""From the journal's records to the season's files: one verdict per animal, cannot-link,
flank links, travel checks, groups of unknowns; results.csv, deployments.csv, groups.csv,
flank_links.csv, summary.json.

results.csv columns (the contract the exports read; more may only follow at the end):
path, station, camera, timestamp, encounter, box, flank, decision, identity, probability,
runner_up, runner_up_probability, travel_flag, group, image_width, image_height, sha256,
detection_conf, matched_spots, travel_note.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from reid import imageio
from reid.fileio import atomic_write_text, atomic_writer
from reid.identify import Pipeline
from reid.season import grouping, review_queue
from reid.season.encounters import Encounter
from reid.season.ingest import Deployment
from reid.season.megadetector import Detections
from reid.season.travel import Place, check_travel, last_seen

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("path", "station", "camera", "timestamp", "encounter", "box", "flank", "decision", "identity",
                  "probability", "runner_up", "runner_up_probability", "travel_flag", "group",
                  "image_width", "image_height", "sha256", "detection_conf", "matched_spots", "travel_note")
DEPLOYMENT_COLUMNS = ("deploymentID", "locationID", "cameraID", "latitude", "longitude", "deploymentStart",
                      "deploymentEnd")
GROUP_COLUMNS = ("group", "detections", "photos", "encounters", "flanks", "stations", "first_seen", "last_seen",
                 "paths")
LINK_COLUMNS = ("identity", "flank", "path", "box", "encounter", "timestamp", "linked_by")
NAMED = ("match", "review")
MAX_DISTRACTORS = 400  # catalogue photos in the unknowns' keypoint index (reid.season.grouping)


def _fmt(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _box(box: Sequence[float] | None) -> str:
    return "" if box is None else ",".join(f"{v:g}" for v in box)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


def animal_verdicts(dets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One verdict per animal: that of its member with the strongest rank-1 evidence (so a
    right flank seen with a matched left flank is that individual)."""
    by_animal: dict[str, list[dict[str, Any]]] = {}
    for d in dets:
        by_animal.setdefault(d["animal"], []).append(d)
    out = {}
    for animal, members in by_animal.items():
        best = max(members, key=lambda d: (d["candidates"][0][1] if d["candidates"] else -1.0, d["key"]))
        c = best["candidates"]
        out[animal] = {"decision": best["decision"], "candidates": c, "best": best["key"],
                       "identity": c[0][0] if c and best["decision"] in NAMED else "",
                       "probability": c[0][1] if c else None,
                       "runner_up": c[1][0] if len(c) > 1 and best["decision"] in NAMED else "",
                       "runner_up_probability": c[1][1] if len(c) > 1 and best["decision"] in NAMED else None,
                       "members": members, "note": ""}
    return out


def cannot_link_pairs(dets: list[dict[str, Any]], camera_of: dict[str, tuple[str, str]]) -> set[tuple[str, str]]:
    """Animals seen in one frame, or boxes of one camera at one moment: never one individual."""
    together: dict[tuple[str, ...], set[str]] = {}
    for d in dets:
        together.setdefault(("frame", d["path"], str(d["t"])), set()).add(d["animal"])
        if d["timestamp"]:
            station, camera = camera_of[d["path"]]
            together.setdefault(("moment", station, camera, d["timestamp"]), set()).add(d["animal"])
    pairs = set()
    for animals in together.values():
        ordered = sorted(animals)
        pairs.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:])
    return pairs


def resolve_conflicts(verdicts: dict[str, dict[str, Any]], cannot: set[tuple[str, str]]) -> list[dict[str, str]]:
    """Two animals that cannot be one individual never carry the same name: the weaker one goes
    to review under its next candidate. Returns what was changed."""
    changed = []
    for _ in range(10):
        clash = False
        for a, b in sorted(cannot):
            va, vb = verdicts.get(a), verdicts.get(b)
            if not va or not vb or not va["identity"] or va["identity"] != vb["identity"]:
                continue
            weak, strong = (a, b) if (va["probability"] or 0, a) < (vb["probability"] or 0, b) else (b, a)
            v = verdicts[weak]
            taken = v["identity"]
            rest = [c for c in v["candidates"] if c[0] != taken]
            v["decision"] = "review"
            v["identity"], v["probability"] = (rest[0][0], rest[0][1]) if rest else ("", None)
            v["runner_up"], v["runner_up_probability"] = (rest[1][0], rest[1][1]) if len(rest) > 1 else ("", None)
            v["note"] = f"seen together with {strong} ({taken}): cannot be {taken}"
            changed.append({"animal": weak, "was": taken, "with": strong})
            clash = True
        if not clash:
            break
    return changed


def _crop_of(plan: Any, d: dict[str, Any], pipeline: Pipeline) -> np.ndarray:
    if d["t"] is None:
        rgb = imageio.load(plan.photo.file, max_pixels=pipeline.settings.max_pixels,
                          max_bytes=pipeline.settings.max_file_bytes).rgb
    else:
        s = pipeline.settings
        frames = imageio.video_frames(plan.photo.file, every_s=s.video_every_s, max_frames=s.video_max_frames,
                                      max_pixels=s.max_pixels)
        rgb = min(frames, key=lambda f: abs(f[0] - d["t"]))[1]
    return imageio.crop(rgb, tuple(d["box"]) if d["box"] else None)


def group_unknowns(pipeline: Pipeline, verdicts: dict[str, dict[str, Any]], plans_by_path: dict[str, Any],
                   cannot: set[tuple[str, str]], threshold: float) -> dict[str, str]:
    """Group ids for the animals whose verdict is new (reid.season.grouping)."""
    new = [a for a in sorted(verdicts, key=lambda a: min(m["key"] for m in verdicts[a]["members"]))
           if verdicts[a]["decision"] == "new"]
    # evidence from the members whose vectors the journal kept (those identified as new); an
    # animal without any still gets its own group
    members = [m for a in new for m in sorted(verdicts[a]["members"], key=lambda m: m["key"])
               if m.get("vector") is not None]
    if not members:
        return grouping.cluster(new, [], [], cannot, threshold=threshold)
    vectors = np.asarray([m["vector"] for m in members], np.float32)
    flanks = [m["flank"] for m in members]
    animal_of = [m["animal"] for m in members]
    keypoints = None
    if pipeline.settings.local_matching and len(members) > 1:
        keypoints = [pipeline.extract_keypoints(_crop_of(plans_by_path[m["path"]], m, pipeline),
                                                boxed=m["box"] is not None) for m in members]
    distractors = []
    if keypoints is not None:
        ids = pipeline.gallery.ids().tolist()
        step = max(1, len(ids) // MAX_DISTRACTORS)
        entries = pipeline.catalog.gallery_entries([int(i) for i in ids[::step]])
        distractors = [(e.individual_id, e.viewpoint, pipeline.local_features(image_id))
                       for image_id, e in sorted(entries.items())]
    pairs = grouping.pair_evidence(vectors, flanks, animal_of, keypoints, pipeline.calibrator.predict,
                                   pipeline.calibrator.features, distractors=distractors)
    return grouping.cluster(new, pairs, animal_of, cannot, threshold=threshold)


def travel_checks(pipeline: Pipeline, verdicts: dict[str, dict[str, Any]], place_of: dict[str, Place],
                  max_km_per_day: float) -> dict[str, Any]:
    """Per named animal, the check against its individual's previous sighting (catalogue or
    earlier this season; only `match` verdicts count as sightings)."""
    history: dict[str, list[Place]] = {}
    for name in sorted({v["identity"] for v in verdicts.values() if v["identity"]}):
        ind = pipeline.catalog.individual_by_name(name)
        if ind is None:
            continue
        history[name] = [Place(r.station or "", r.lat, r.lon, _time(r.timestamp), "catalogue")
                         for r in pipeline.catalog.images_of(ind.id)]
    checks: dict[str, Any] = {}
    timed = [(p.when, a) for a, p in place_of.items() if a in verdicts and p.when is not None]
    for when, animal in sorted(timed):
        v = verdicts[animal]
        if not v["identity"]:
            continue
        here = place_of[animal]
        prev = last_seen(history.get(v["identity"], []), when)
        if prev is not None:
            check = check_travel(prev, here, max_km_per_day=max_km_per_day)
            if check is not None:
                checks[animal] = check
        if v["decision"] == "match":
            history.setdefault(v["identity"], []).append(here)
    return checks


def _write_csv(path: Path, header: Sequence[str], rows: list[list[Any]]) -> None:
    with atomic_writer(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")


def _deployment_rows(plans: list[Any], deployments: list[Deployment]) -> list[list[str]]:
    cams: dict[tuple[str, str], list[Any]] = {}
    for p in plans:
        cams.setdefault((p.photo.station, p.photo.camera), []).append(p.photo)
    rows = []
    for (station, camera), photos in sorted(cams.items()):
        dep = next((ph.deployment for ph in photos if ph.deployment is not None), None)
        times = sorted(ph.timestamp for ph in photos if ph.timestamp is not None)
        start = dep.start if dep and dep.start else (times[0] if times else None)
        end = dep.end if dep and dep.end else (times[-1] if times else None)
        rows.append([dep.deployment_id if dep else f"{station}/{camera}", station, camera,
                     "" if not dep or dep.lat is None else f"{dep.lat:.6f}",
                     "" if not dep or dep.lon is None else f"{dep.lon:.6f}",
                     start.isoformat(timespec="seconds") if start else "",
                     end.isoformat(timespec="seconds") if end else ""])
    return rows


def write_outputs(pipeline: Pipeline, out_dir: Path, plans: list[Any], encounters: list[Encounter],
                  records: list[dict[str, Any]], deployments: list[Deployment], options: Any, *,
                  detections: Detections | None = None) -> dict[str, Any]:
    plans_by_path = {p.path: p for p in plans}
    dets = [r for r in records if r["kind"] == "detection"]
    errors = {p.path: p.message for p in plans if p.status == "error"}
    errors.update({r["path"]: r["error"] for r in records if r["kind"] == "error"})
    empty_videos = {r["path"] for r in records if r["kind"] == "empty"}
    encounter_of = {s.key: s.encounter for e in encounters for s in e.sightings}
    camera_of = {p.path: (p.photo.station, p.photo.camera) for p in plans}

    verdicts = animal_verdicts(dets)
    cannot = cannot_link_pairs(dets, camera_of)
    conflicts = resolve_conflicts(verdicts, cannot)

    place_of: dict[str, Place] = {}
    for animal, v in verdicts.items():
        times = [t for t in (_time(m["timestamp"]) for m in v["members"]) if t is not None]
        photo = plans_by_path[v["members"][0]["path"]].photo
        dep = photo.deployment
        place_of[animal] = Place(photo.station, dep.lat if dep else None, dep.lon if dep else None,
                                 min(times) if times else None)
    checks = travel_checks(pipeline, verdicts, place_of, options.max_km_per_day)
    threshold = options.group_threshold if options.group_threshold is not None else pipeline.settings.match_threshold
    groups = group_unknowns(pipeline, verdicts, plans_by_path, cannot, threshold)

    # flank links: a matched animal's flank its individual has no photo of yet
    links = []
    link_members: list[dict[str, Any]] = []  # the same, for review items (reid.season.review_queue)
    enrolled: dict[str, set[str]] = {}
    for animal in sorted(verdicts):
        v = verdicts[animal]
        if v["decision"] != "match":
            continue
        name = v["identity"]
        if name not in enrolled:
            ind = pipeline.catalog.individual_by_name(name)
            enrolled[name] = {r.viewpoint for r in pipeline.catalog.images_of(ind.id)} if ind else set()
        best = next(m for m in v["members"] if m["key"] == v["best"])
        for m in sorted(v["members"], key=lambda m: m["key"]):
            if m["flank"] in ("left", "right") and m["flank"] not in enrolled[name]:
                enc = encounter_of.get(m["key"].split("@")[0] if "@" in m["key"] else m["key"],
                                       encounter_of.get(f"{m['path']}#v", ""))
                links.append([name, m["flank"], m["path"], _box(m["box"]), enc, m["timestamp"], v["best"]])
                link_members.append({"identity": name, "encounter": enc, "member": m, "linked_flank": best["flank"],
                                     "probability": v["probability"],
                                     "inliers": next((c[2] for c in best["candidates"] if c[0] == name), 0)})

    def det_row(m: dict[str, Any]) -> list[str]:
        v = verdicts[m["animal"]]
        plan = plans_by_path[m["path"]]
        enc = encounter_of.get(m["key"]) or encounter_of.get(f"{m['path']}#v", "")
        spots = next((str(c[2]) for c in m["candidates"] if c[0] == v["identity"]), "0") if v["identity"] else ""
        check = checks.get(m["animal"])
        flag = "" if check is None else ("yes" if check.flagged else "no")
        note = check.note(v["identity"]) if check is not None else ""
        if v["note"]:
            note = f"{v['note']}; {note}" if note else v["note"]
        return [m["path"], plan.photo.station, plan.photo.camera, m["timestamp"], enc, _box(m["box"]), m["flank"],
                v["decision"], v["identity"], _fmt(v["probability"]), v["runner_up"], _fmt(v["runner_up_probability"]),
                flag, groups.get(m["animal"], ""), str(m["width"]), str(m["height"]), plan.photo.sha256,
                _fmt(m["conf"], 4), spots, note]

    def photo_row(plan: Any, decision: str) -> list[str]:
        ts = plan.photo.timestamp.isoformat(timespec="seconds") if plan.photo.timestamp else ""
        size = plan.size or ("", "")
        return [plan.path, plan.photo.station, plan.photo.camera, ts, "", "", "", decision, "", "", "", "", "", "",
                str(size[0]), str(size[1]), plan.photo.sha256, "", "", ""]

    dets_by_path: dict[str, list[dict[str, Any]]] = {}
    for m in dets:
        dets_by_path.setdefault(m["path"], []).append(m)
    rows_by_path: dict[str, list[list[str]]] = {}
    for plan in plans:
        if plan.status == "duplicate":
            continue
        if plan.path in errors:
            rows_by_path[plan.path] = [photo_row(plan, "error")]
        elif plan.status == "empty" or plan.path in empty_videos:
            rows_by_path[plan.path] = [photo_row(plan, "empty")]
        else:
            members = sorted(dets_by_path.get(plan.path, []),
                             key=lambda m: (m["t"] if m["t"] is not None else -1.0, m["key"]))
            rows_by_path[plan.path] = [det_row(m) for m in members] or [photo_row(plan, "empty")]
    rows: list[list[str]] = []
    duplicates = []
    for plan in plans:
        if plan.status == "duplicate":
            duplicates.append({"path": plan.path, "original": plan.original})
            for r in rows_by_path.get(plan.original, []):
                dup = list(r)
                dup[0], dup[7] = plan.path, "duplicate"
                dup[12], dup[19] = "", f"same bytes as {plan.original}"
                rows.append(dup)
        else:
            rows.extend(rows_by_path[plan.path])

    _write_csv(out_dir / "results.csv", RESULT_COLUMNS, rows)
    _write_csv(out_dir / "deployments.csv", DEPLOYMENT_COLUMNS, _deployment_rows(plans, deployments))
    group_rows = []
    by_group: dict[str, list[dict[str, Any]]] = {}
    for animal, g in groups.items():
        by_group.setdefault(g, []).extend(verdicts[animal]["members"])
    for g in sorted(by_group):
        ms = sorted(by_group[g], key=lambda m: m["key"])
        times = sorted(m["timestamp"] for m in ms if m["timestamp"])
        group_rows.append([g, len(ms), len({m["path"] for m in ms}),
                           len({encounter_of.get(m["key"], m["animal"]) for m in ms}),
                           ";".join(sorted({m["flank"] for m in ms})),
                           ";".join(sorted({camera_of[m["path"]][0] for m in ms})),
                           times[0] if times else "", times[-1] if times else "",
                           ";".join(sorted({m["path"] for m in ms}))])
    _write_csv(out_dir / "groups.csv", GROUP_COLUMNS, group_rows)
    _write_csv(out_dir / "flank_links.csv", LINK_COLUMNS, links)
    # a person decides both: each putative new individual and each linked flank is one review item
    group_items = review_queue.queue_groups(pipeline, by_group, plans_by_path, encounter_of)
    link_items = review_queue.queue_flank_links(pipeline, link_members, plans_by_path)

    decisions = Counter(r[7] for r in rows)
    return {
        "season_dir": str(Path(plans[0].photo.file).parents[len(Path(plans[0].path).parts) - 1]) if plans else "",
        "model_id": pipeline.model_id,
        "photos": len(plans), "videos": sum(p.photo.is_video for p in plans), "detections": len(dets),
        "rows": len(rows), "decisions": {k: decisions.get(k, 0) for k in
                                         ("match", "review", "new", "empty", "duplicate", "error")},
        "encounters": len(encounters), "animals": len(verdicts),
        "unknown_groups": len(by_group), "flank_links": len(links),
        "review_items": {"unknown_groups": len(group_items), "flank_links": len(link_items)},
        "travel_flags": sum(1 for c in checks.values() if c.flagged),
        "duplicates": duplicates, "errors": [{"path": p, "error": e} for p, e in sorted(errors.items())],
        "no_time": [p.path for p in plans if p.photo.timestamp is None],
        "cannot_link_conflicts": conflicts,
        "detections_file": None if detections is None else {
            "source": detections.source, "threshold": detections.threshold,
            "below_threshold": detections.below_threshold, "failures": len(detections.failures)},
        "options": asdict(options), "group_threshold": threshold,
    }


__all__ = ["RESULT_COLUMNS", "animal_verdicts", "cannot_link_pairs", "resolve_conflicts", "write_outputs",
           "write_summary"]
