"""Capture histories, shared by the secr and camtrapR writers: detector ids, individual ids
per flank, sampling occasions, station effort, and metric station coordinates.

Flanks: an individual whose left and right flanks are both known (linked, e.g. by a paired-
camera encounter) is one animal whatever flank a photo shows. One known from a single flank
only is exported under a flank-marked id (`Kyzyl-left`): two such ids of opposite flanks may
be the same animal, so analysts either keep one flank (`--flank left|right`: only photos of
that flank count, every individual identified the same way) or all linked ones (docs/exports.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from reid.errors import ReidError
from reid.exports.geo import UtmZone, to_utm, utm_zone_for
from reid.exports.records import Deployment, Detection, ExportData

FLANK_MODES = ("both", "left", "right")


def safe_id(text: str) -> str:
    """secr and camtrapR split on whitespace and use `_` as a separator: keep letters, digits, `.`, `-`."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", text.strip()).strip("-")
    return cleaned or "x"


def unique_ids(names: list[str]) -> dict[str, str]:
    """name -> safe id, unique (a numeric suffix where two names clean to the same id)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(set(names)):
        base = candidate = safe_id(name)
        n = 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        out[name] = candidate
        taken.add(candidate)
    return out


@dataclass(frozen=True)
class ExportIndividual:
    key: str  # catalogue name or new-<group>
    id: str  # id in the capture files
    flanks: str  # both, left only, right only, unknown
    confirmed: bool


@dataclass(frozen=True)
class Capture:
    individual: ExportIndividual
    detector: str
    occasion: int  # 1-based
    detection: Detection


@dataclass
class CaptureHistory:
    start: datetime  # occasion 1 begins here (local midnight)
    occasion_days: int
    occasions: int
    detectors: dict[str, str]  # station -> detector id
    usage: dict[str, str]  # detector id -> one 0/1 per occasion
    xy: dict[str, tuple[float, float]]  # detector id -> metres
    zone: UtmZone | None  # None when coordinates are withheld (offsets from a hidden origin)
    individuals: dict[str, ExportIndividual]
    captures: list[Capture]
    cameras: list[Deployment]
    skipped: dict[str, int]


def _individuals(data: ExportData, flank: str) -> dict[str, ExportIndividual]:
    ids = unique_ids(list(data.individuals))
    out = {}
    for key, info in data.individuals.items():
        known = info.flanks_known & {"left", "right"}
        if flank != "both":
            out[key] = ExportIndividual(key, ids[key], f"{flank} flank only", info.confirmed)
        elif len(known) == 2:
            out[key] = ExportIndividual(key, ids[key], "both", info.confirmed)
        elif known:
            side = next(iter(known))
            out[key] = ExportIndividual(key, f"{ids[key]}-{side}", f"{side} only", info.confirmed)
        else:
            out[key] = ExportIndividual(key, ids[key], "unknown", info.confirmed)
    return out


def operating(cameras: list[Deployment], start: datetime, end: datetime) -> bool:
    """Whether any of these cameras worked during some part of [start, end)."""
    for cam in cameras:
        if cam.start is None or cam.end is None or cam.end < start or cam.start >= end:
            continue
        lo, hi = max(cam.start, start), min(cam.end, end)
        if not any(a <= lo and hi <= b for a, b in cam.problems):
            return True
    return False


def _metres(data: ExportData, stations: dict[str, tuple[float, float]]) -> tuple[dict[str, tuple], UtmZone | None]:
    if not stations:
        return {}, None
    lat0 = sum(p[0] for p in stations.values()) / len(stations)
    lon0 = sum(p[1] for p in stations.values()) / len(stations)
    zone = utm_zone_for(lat0, lon0)
    xy = {s: to_utm(lat, lon, zone) for s, (lat, lon) in stations.items()}
    if data.options.coordinates.mode == "withhold":
        # Distances are all secr needs: offsets from a hidden origin (1 km grid below the minimum).
        ox = math.floor(min(x for x, _ in xy.values()) / 1000) * 1000 - 1000
        oy = math.floor(min(y for _, y in xy.values()) / 1000) * 1000 - 1000
        return {s: (x - ox, y - oy) for s, (x, y) in xy.items()}, None
    return xy, zone


def build_capture_history(data: ExportData) -> CaptureHistory:
    opts = data.options
    if opts.flank not in FLANK_MODES:
        raise ReidError(f"--flank {opts.flank!r}: use one of {', '.join(FLANK_MODES)}")
    if opts.occasion_days < 1:
        raise ReidError("--occasion-days must be at least 1")
    cameras = [d for d in data.deployments if d.start is not None and d.end is not None]
    stations: dict[str, tuple[float, float]] = {}
    for cam in cameras:
        lat, lon = (cam.lat, cam.lon) if opts.coordinates.mode == "withhold" else opts.coordinates.apply(cam.lat, cam.lon)
        if lat is not None and lon is not None:
            stations.setdefault(cam.station, (lat, lon))
    cameras = [c for c in cameras if c.station in stations]
    if not cameras:
        raise ReidError("no camera station with coordinates and a known operating period in this selection: "
                        "nothing to build a capture history from")
    start = datetime.combine(min(c.start for c in cameras).date(), time.min)  # type: ignore[type-var]
    end = max(c.end for c in cameras)  # type: ignore[type-var]
    step = timedelta(days=opts.occasion_days)
    occasions = max(1, math.ceil((end - start + timedelta(seconds=1)) / step))
    detectors = unique_ids(list(stations))
    usage = {}
    for station, det_id in detectors.items():
        mine = [c for c in cameras if c.station == station]
        usage[det_id] = "".join("1" if operating(mine, start + k * step, start + (k + 1) * step) else "0"
                                for k in range(occasions))
    xy, zone = _metres(data, stations)
    individuals = _individuals(data, opts.flank)
    captures, skipped = [], {"no station coordinates or effort": 0, "other flank": 0, "outside camera effort": 0}
    for det in data.identified:
        if det.station not in detectors or det.timestamp is None:
            skipped["no station coordinates or effort"] += 1
            continue
        if opts.flank != "both" and det.flank != opts.flank:
            skipped["other flank"] += 1
            continue
        det_id = detectors[det.station]
        occasion = int((det.timestamp - start) // step) + 1
        if not 1 <= occasion <= occasions or usage[det_id][occasion - 1] != "1":
            skipped["outside camera effort"] += 1
            continue
        captures.append(Capture(individuals[det.individual], det_id, occasion, det))  # type: ignore[index]
    return CaptureHistory(start, opts.occasion_days, occasions, detectors, usage,
                          {detectors[s]: p for s, p in xy.items()}, zone,
                          {k: v for k, v in individuals.items() if any(c.individual.key == k for c in captures)},
                          captures, cameras, {k: v for k, v in skipped.items() if v})
