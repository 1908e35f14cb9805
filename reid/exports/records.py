"""What every export reads: one list of detections (confirmed catalogue photos and a season
run's machine identifications, each marked as which), the camera deployments (effort), and
the individuals with the flanks they are known by.

Rules, in one place so all formats agree:
- a catalogue photo is a human (confirmed) identification; a season `match` is a machine one;
  a season `new` row with a `group` is a putative new individual (`new-<group>`), machine;
  `review` and `empty` rows are detections without an individual; `error` and `duplicate`
  rows are left out (counted);
- a season row whose file and box were confirmed into the catalogue since is the catalogue's;
- timestamps are local camera time (naive); one UTC offset is attached where a format needs it;
- effort comes from the season's deployments.csv; a camera without one gets a deployment from
  its first to its last photo (a lower bound of its effort, marked `photos` in `source`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from reid.catalog import Catalog, box_key
from reid.errors import ReidError
from reid.exports.geo import CoordinatePolicy
from reid.exports.season_results import Deployment, SeasonResults, parse_time, read_season_results

log = logging.getLogger(__name__)

TAXON = {"scientificName": "Panthera pardus tulliana", "taxonRank": "subspecies",
         "vernacularNames": {"eng": "Persian leopard"}}


@dataclass(frozen=True)
class ExportOptions:
    date_from: date | None = None
    date_to: date | None = None
    coordinates: CoordinatePolicy = field(default_factory=CoordinatePolicy)
    utc_offset: timedelta = timedelta(hours=5)  # Kazakhstan, one zone since March 2024
    occasion_days: int = 1
    flank: str = "both"  # capture histories: both (linked), left or right only
    confirmed_only: bool = False
    project: dict[str, Any] = field(default_factory=dict)  # title, contributors, ... (Camtrap DP)

    @property
    def tz(self) -> timezone:
        return timezone(self.utc_offset)




@dataclass(frozen=True)
class Detection:
    media_id: str  # sha256 of the file
    path: str  # season path (relative to the season folder) or catalogue copy (relative to the data dir)
    station: str
    camera: str
    timestamp: datetime | None
    encounter: str
    box: tuple[float, float, float, float] | None
    width: int | None
    height: int | None
    flank: str
    decision: str  # confirmed, match, new, review, empty
    individual: str | None  # catalogue name or new-<group>
    method: str  # human or machine
    classified_by: str
    probability: float | None
    travel_flag: bool = False
    travel_note: str = ""
    deployment_id: str = ""
    image_id: int | None = None  # catalogue image id
    stored_path: str | None = None  # catalogue copy, for thumbnails


@dataclass
class IndividualInfo:
    key: str  # catalogue name or new-<group>
    confirmed: bool  # a catalogue individual, not a putative group
    sex: str | None = None
    notes: str | None = None
    catalogue_id: int | None = None
    flanks_known: set[str] = field(default_factory=set)


@dataclass
class ExportData:
    deployments: list[Deployment]
    detections: list[Detection]
    individuals: dict[str, IndividualInfo]
    options: ExportOptions
    data_dir: Path
    season: SeasonResults | None = None
    left_out: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def identified(self) -> list[Detection]:
        return [d for d in self.detections if d.individual]

    def warnings(self) -> list[str]:
        return [f"{n} detection(s) left out: {why}" for why, n in sorted(self.left_out.items())]


def local_time(value: datetime | None, tz: timezone) -> datetime | None:
    """Naive local time; an aware timestamp is first converted to the export's offset."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(tz).replace(tzinfo=None)


def _catalogue_detections(catalog: Catalog, tz: timezone, station_coords: dict[str, tuple]
                           ) -> tuple[list[Detection], dict[str, IndividualInfo]]:
    enrolled_by = {r["image_id"]: r["actor"] for r in catalog.audit_rows("enroll_image", limit=10**9)}
    detections, individuals = [], {}
    for ind in catalog.list_individuals():
        info = IndividualInfo(ind.name, True, ind.sex, ind.notes, ind.id)
        individuals[ind.name] = info
        for img in catalog.images_of(ind.id):
            if img.viewpoint in ("left", "right"):
                info.flanks_known.add(img.viewpoint)
            if img.station and img.lat is not None and img.lon is not None:
                station_coords.setdefault(img.station, (img.lat, img.lon))
            try:
                ts = local_time(parse_time(img.timestamp or "", f"catalogue image {img.id}"), tz)
            except ReidError:
                ts = None
            detections.append(Detection(
                media_id=img.sha256, path=img.stored_path, station=img.station or "", camera=img.camera or "",
                timestamp=ts, encounter=img.sighting or "", box=img.box_tuple, width=img.width, height=img.height,
                flank=img.viewpoint, decision="confirmed", individual=ind.name, method="human",
                classified_by=enrolled_by.get(img.id, "system"), probability=None, image_id=img.id,
                stored_path=img.stored_path))
    return detections, individuals


def _season_detections(season: SeasonResults, known: set[tuple[str, str]], individuals: dict[str, IndividualInfo],
                       options: ExportOptions, left_out: Counter) -> list[Detection]:
    out = []
    for r in season.rows:
        if r.decision in ("error", "duplicate"):
            left_out[f"season rows with decision {r.decision}"] += 1
            continue
        if r.sha256 and (r.sha256, box_key(r.box)) in known:
            left_out["season rows confirmed into the catalogue since (exported as confirmed)"] += 1
            continue
        individual = None
        if r.decision == "match" and not options.confirmed_only:
            if r.identity in individuals:
                individual = r.identity
            else:  # renamed or merged since the run: a detection without an individual, not a wrong one
                left_out[f"season matches to {r.identity!r}, no longer in the catalogue: kept without an individual"] += 1
        elif r.decision == "new" and r.group and not options.confirmed_only:
            individual = f"new-{r.group}"
            individuals.setdefault(individual, IndividualInfo(individual, False))
        if individual and r.flank in ("left", "right"):
            individuals[individual].flanks_known.add(r.flank)
        out.append(Detection(
            media_id=r.sha256 or f"path:{r.path}", path=r.path, station=r.station, camera=r.camera,
            timestamp=local_time(r.timestamp, options.tz), encounter=r.encounter, box=r.box, width=r.image_width,
            height=r.image_height, flank=r.flank, decision=r.decision, individual=individual,
            method="machine", classified_by="reid season run", probability=r.probability,
            travel_flag=r.travel_flag, travel_note=r.travel_note))
    return out


def _in_range(ts: datetime | None, options: ExportOptions) -> bool:
    if options.date_from is None and options.date_to is None:
        return True
    if ts is None:
        return False
    return ((options.date_from is None or ts.date() >= options.date_from)
            and (options.date_to is None or ts.date() <= options.date_to))


def _clip(dep: Deployment, options: ExportOptions) -> Deployment | None:
    start, end = dep.start, dep.end
    if options.date_from is not None:
        lo = datetime.combine(options.date_from, time.min)
        start = lo if start is None or start < lo else start
    if options.date_to is not None:
        hi = datetime.combine(options.date_to, time(23, 59, 59))
        end = hi if end is None or end > hi else end
    if start is not None and end is not None and end < start:
        return None
    return Deployment(dep.deployment_id, dep.station, dep.camera, dep.lat, dep.lon, start, end, dep.problems,
                      dep.source)


def _deployments(season: SeasonResults | None, detections: list[Detection], station_coords: dict[str, tuple],
                 tz: timezone) -> tuple[list[Deployment], list[Detection]]:
    """Season deployments, plus one per (station, camera) seen only in photos; every detection
    with a station gets its deployment id."""
    deps = [Deployment(d.deployment_id, d.station, d.camera, d.lat, d.lon, local_time(d.start, tz),
                       local_time(d.end, tz), tuple((local_time(a, tz), local_time(b, tz)) for a, b in d.problems))
            for d in (season.deployments if season else [])]
    for d in deps:
        if d.lat is not None and d.lon is not None:
            station_coords.setdefault(d.station, (d.lat, d.lon))

    def covering(det: Detection) -> Deployment | None:
        for d in deps:
            if d.station == det.station and d.camera == det.camera and (
                    det.timestamp is None or d.start is None or d.end is None or d.start <= det.timestamp <= d.end):
                return d
        return None

    unplaced: dict[tuple[str, str], list[datetime | None]] = {}
    for det in detections:
        if det.station and covering(det) is None:
            unplaced.setdefault((det.station, det.camera), []).append(det.timestamp)
    for (station, camera), times in sorted(unplaced.items()):
        known = [t for t in times if t is not None]
        lat, lon = station_coords.get(station, (None, None))
        dep_id = f"{station}-{camera}" if camera else station
        if any(d.deployment_id == dep_id for d in deps):
            dep_id += "-photos"
        deps.append(Deployment(dep_id, station, camera, lat, lon, min(known, default=None), max(known, default=None),
                               source="photos"))
    placed = []
    for det in detections:
        dep = covering(det) if det.station else None
        placed.append(det if dep is None else _with_deployment(det, dep.deployment_id))
    return deps, placed


def _with_deployment(det: Detection, deployment_id: str) -> Detection:
    return replace(det, deployment_id=deployment_id)


def load_export_data(catalog: Catalog, *, season_dir: str | Path | None = None,
                     options: ExportOptions | None = None) -> ExportData:
    """Everything the exporters and the report need, filtered to the options' date range."""
    options = options or ExportOptions()
    left_out: Counter = Counter()
    station_coords: dict[str, tuple] = {}
    detections, individuals = _catalogue_detections(catalog, options.tz, station_coords)
    season = read_season_results(season_dir) if season_dir is not None else None
    if season is not None:
        known = {(d.media_id, box_key(d.box)) for d in detections}
        detections += _season_detections(season, known, individuals, options, left_out)
    kept = []
    for det in detections:
        if not _in_range(det.timestamp, options):
            left_out["outside the date range or without a timestamp"] += 1
        else:
            kept.append(det)
    deployments, kept = _deployments(season, kept, station_coords, options.tz)
    clipped = [c for d in deployments if (c := _clip(d, options)) is not None]
    used = {d.individual for d in kept if d.individual}
    individuals = {k: v for k, v in individuals.items() if k in used}
    kept.sort(key=lambda d: (d.timestamp or datetime.min, d.station, d.camera, d.path))
    return ExportData(deployments=clipped, detections=kept, individuals=individuals, options=options,
                      data_dir=catalog.data_dir, season=season, left_out=left_out)
