"""Encounters: detections at one station (all of its cameras) with no gap longer than `gap_s`.

Within an encounter, the animals: when no photo holds more than one animal, the encounter is
one animal (every detection, on both cameras of a pair, is the same individual: that is how
paired cameras link the left and right flank). When some photo holds several, detections are
chained into tracks per camera (a box that overlaps the previous photo's box is the same
animal) and each track is one animal; tracks are never linked across cameras then.

Cannot-link: two detections in one photo, or two boxes of one camera at the same moment,
are never the same individual; `cannot_link` lists those pairs of animals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_GAP_S = 60.0
TRACK_IOU = 0.3


@dataclass
class Sighting:
    """One detection (or a whole frame) to identify: the unit encounters are made of."""

    key: str  # unique and stable: "path#box-index" or "path@t=..#box-index"
    photo: str  # the file's path (frames of one video share it)
    frame: str  # the photo or video frame it is in: detections with the same frame are in one picture
    station: str
    camera: str
    timestamp: datetime | None
    box: tuple[float, float, float, float] | None = None
    encounter: str = ""
    animal: str = ""  # which animal of the encounter (sightings with one animal id are one individual)


@dataclass
class Encounter:
    id: str
    station: str
    start: datetime | None
    end: datetime | None
    sightings: list[Sighting] = field(default_factory=list)
    animals: list[str] = field(default_factory=list)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _tracks(members: list[Sighting], prefix: str) -> None:
    """Per camera, frame by frame in time order: each box joins the track whose last box it
    overlaps most (IoU >= TRACK_IOU, one box per track per frame), else starts a new track."""
    by_camera: dict[str, list[Sighting]] = {}
    for s in members:
        by_camera.setdefault(s.camera, []).append(s)
    n = 0
    for camera in sorted(by_camera):
        frames: dict[str, list[Sighting]] = {}
        for s in by_camera[camera]:
            frames.setdefault(s.frame, []).append(s)
        last: dict[str, Sighting] = {}  # track id -> its latest box
        for frame in sorted(frames, key=lambda f: (frames[f][0].timestamp or datetime.min, f)):
            taken: set[str] = set()
            for s in frames[frame]:
                best, best_iou = None, TRACK_IOU
                for track, prev in last.items():
                    if track in taken or s.box is None or prev.box is None:
                        continue
                    v = iou(s.box, prev.box)
                    if v >= best_iou:
                        best, best_iou = track, v
                if best is None:
                    n += 1
                    best = f"{prefix}a{n}"
                s.animal = best
                taken.add(best)
                last[best] = s


def group_encounters(sightings: Sequence[Sighting], *, gap_s: float = DEFAULT_GAP_S) -> list[Encounter]:
    """Assign `encounter` and `animal` to every sighting; encounters in (station, time) order,
    ids E00001... A sighting without a time is an encounter of its own (its photo's)."""
    timed = sorted((s for s in sightings if s.timestamp is not None), key=lambda s: (s.station, s.timestamp, s.key))
    untimed = sorted((s for s in sightings if s.timestamp is None), key=lambda s: s.key)
    groups: list[list[Sighting]] = []
    for s in timed:
        prev = groups[-1][-1] if groups else None
        if (prev is not None and prev.station == s.station
                and (s.timestamp - prev.timestamp).total_seconds() <= gap_s):  # type: ignore[operator]
            groups[-1].append(s)
        else:
            groups.append([s])
    by_photo: dict[str, list[Sighting]] = {}
    for s in untimed:
        by_photo.setdefault(s.photo, []).append(s)
    groups.extend(by_photo[p] for p in sorted(by_photo))
    encounters = []
    for n, members in enumerate(groups, 1):
        eid = f"E{n:05d}"
        for s in members:
            s.encounter = eid
        per_frame: dict[str, int] = {}
        for s in members:
            per_frame[s.frame] = per_frame.get(s.frame, 0) + 1
        if max(per_frame.values()) <= 1:
            for s in members:
                s.animal = f"{eid}a1"  # one animal: both cameras, both flanks
        else:
            _tracks(members, eid)
        times = [s.timestamp for s in members if s.timestamp is not None]
        encounters.append(Encounter(eid, members[0].station, min(times) if times else None,
                                    max(times) if times else None, members,
                                    sorted({s.animal for s in members})))
    return encounters


def cannot_link(sightings: Sequence[Sighting]) -> set[tuple[str, str]]:
    """Pairs of animal ids (sorted) that are certainly different individuals: in one photo
    together, or boxes of one camera at the same moment."""
    pairs: set[tuple[str, str]] = set()
    by_moment: dict[tuple[str, ...], set[str]] = {}
    for s in sightings:
        by_moment.setdefault(("frame", s.frame), set()).add(s.animal)
        if s.timestamp is not None:
            by_moment.setdefault(("moment", s.station, s.camera, s.timestamp.isoformat()), set()).add(s.animal)
    for animals in by_moment.values():
        ordered = sorted(animals)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                pairs.add((a, b))
    return pairs


__all__ = ["DEFAULT_GAP_S", "Encounter", "Sighting", "cannot_link", "group_encounters", "iou"]
