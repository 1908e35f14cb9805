"""The season report: one self-contained HTML file (thumbnails as data URIs, SVG map and
charts inline, no scripts, no network), rendered from the same data the exports read.

    html = render_report(load_export_data(catalog, season_dir=...), images_dir=SEASON_DIR)

The web app serves the same page live from the catalogue (/report).
"""

from __future__ import annotations

import base64
import io
import sqlite3
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reid import __version__
from reid.exports import plots
from reid.exports.geo import haversine_km
from reid.exports.records import Deployment, Detection, ExportData

TEMPLATES = Path(__file__).resolve().parent / "templates"
THUMB_SIZE = (220, 160)


def pending_reviews(catalog_path: Path) -> int | None:
    """Items waiting in the review queue (reid.review), or None where there is no catalogue or
    it predates the queue. Read-only: a report never changes the catalogue."""
    if not catalog_path.is_file():
        return None
    with closing(sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True)) as con:
        try:
            row = con.execute("SELECT COUNT(*) FROM review_items WHERE status IN ('pending', 'deciding')").fetchone()
        except sqlite3.OperationalError:  # a catalogue from before the review queue
            return None
    return int(row[0])


def camera_days(dep: Deployment) -> float:
    """Operating days of one camera: its deployment less its problem periods."""
    if dep.start is None or dep.end is None:
        return 0.0
    lost = sum((min(b, dep.end) - max(a, dep.start)).total_seconds() for a, b in dep.problems if b > dep.start and a < dep.end)
    return max(0.0, ((dep.end - dep.start).total_seconds() - lost) / 86400)


def thumbnail(path: Path, box: tuple[float, float, float, float] | None) -> str | None:
    """A small JPEG of the animal as a data URI (None when the file is not there or unreadable)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            if box is not None:
                x, y, w, h = box
                im = im.crop((int(x), int(y), int(x + w), int(y + h)))
            im.thumbnail(THUMB_SIZE)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=72)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Card:
    key: str
    confirmed: bool
    sex: str
    flanks_known: list[str]
    detections: int
    encounters: int
    first_seen: datetime | None
    last_seen: datetime | None
    stations: list[str]
    photos: list[tuple[str, str | None, str]] = field(default_factory=list)  # (flank, data URI, caption)
    timeline: str = ""


@dataclass
class TravelFlag:
    individual: str
    when: datetime
    from_station: str
    to_station: str
    km: float | None
    days: float | None
    note: str

    @property
    def km_per_day(self) -> float | None:
        return None if self.km is None or not self.days else self.km / self.days


def _image_path(det: Detection, data: ExportData, images_dir: Path | None) -> Path | None:
    if det.stored_path:
        return data.data_dir / det.stored_path
    return images_dir / det.path if images_dir is not None else None


def _best_photos(dets: list[Detection], data: ExportData, images_dir: Path | None) -> list[tuple[str, str | None, str]]:
    """Per flank, the most trustworthy clear view: confirmed first, then by probability and box size."""
    out = []
    for flank in ("left", "right", "front", "back", "unknown"):
        mine = [d for d in dets if d.flank == flank]
        if not mine:
            continue
        mine.sort(key=lambda d: (d.method != "human", -(d.probability or 0.0),
                                 -((d.box[2] * d.box[3]) if d.box else (d.width or 0) * (d.height or 0))))
        uri = None
        for d in mine:
            path = _image_path(d, data, images_dir)
            if path is not None and (uri := thumbnail(path, d.box)) is not None:
                caption = f"{flank} · {d.station or '?'} · {d.timestamp:%Y-%m-%d}" if d.timestamp else flank
                break
        out.append((flank, uri, caption if uri else f"{flank}: photo not available here"))
    return out


def _daily(points: list[tuple[datetime, str]]) -> list[tuple[datetime, str]]:
    """One point per day and station (noon): a season of bursts stays a readable, small picture."""
    return sorted({(datetime.combine(t.date(), datetime.min.time()) + timedelta(hours=12), s) for t, s in points})


def _travel_flags(data: ExportData, coords: dict[str, tuple[float, float]]) -> list[TravelFlag]:
    flags = []
    for det in data.detections:
        if not det.travel_flag or not det.individual or det.timestamp is None:
            continue
        before = [d for d in data.detections if d.individual == det.individual and d.timestamp is not None
                  and d.timestamp < det.timestamp and d.station != det.station]
        prev = max(before, key=lambda d: d.timestamp, default=None)  # type: ignore[arg-type,return-value]
        km = days = None
        if prev is not None and prev.station in coords and det.station in coords:
            km = haversine_km(*coords[prev.station], *coords[det.station])
            days = (det.timestamp - prev.timestamp).total_seconds() / 86400  # type: ignore[operator]
        flags.append(TravelFlag(det.individual, det.timestamp, prev.station if prev else "?", det.station, km, days,
                                det.travel_note))
    return flags


def report_context(data: ExportData, *, images_dir: Path | None = None, title: str | None = None) -> dict[str, Any]:
    """Everything the template shows, computed once (also what the tests compare with)."""
    animals = [d for d in data.detections if d.decision != "empty"]
    policy = data.options.coordinates
    coords: dict[str, tuple[float, float]] = {}
    for dep in data.deployments:
        if dep.lat is not None and dep.lon is not None:
            coords.setdefault(dep.station, (dep.lat, dep.lon))
    stations = sorted({d.station for d in data.deployments} | {d.station for d in animals if d.station})
    colours = plots.station_colours(stations)
    times = [t for d in data.deployments for t in (d.start, d.end) if t] + [d.timestamp for d in animals if d.timestamp]
    start, end = (min(times), max(times)) if times else (datetime.now(), datetime.now())
    by_individual: dict[str, list[Detection]] = defaultdict(list)
    for d in animals:
        if d.individual:
            by_individual[d.individual].append(d)
    cards = []
    for key, dets in sorted(by_individual.items()):
        info = data.individuals[key]
        timed = [d.timestamp for d in dets if d.timestamp]
        cards.append(Card(
            key=key, confirmed=info.confirmed, sex=info.sex or "", flanks_known=sorted(info.flanks_known),
            detections=len(dets), encounters=len({d.encounter or d.media_id for d in dets}),
            first_seen=min(timed, default=None), last_seen=max(timed, default=None),
            stations=sorted({d.station for d in dets if d.station}), photos=_best_photos(dets, data, images_dir),
            timeline=plots.timeline_svg(_daily([(d.timestamp, d.station) for d in dets if d.timestamp]), start, end,
                                        colours)))
    per_day: dict[str, Counter] = defaultdict(Counter)
    for d in animals:
        if d.timestamp and d.station:
            per_day[d.station][d.timestamp.date()] += 1
    flags = _travel_flags(data, coords)
    shown = {s: policy.apply(*c) for s, c in coords.items()}
    cameras_at: dict[str, list[Deployment]] = defaultdict(list)
    for dep in data.deployments:
        cameras_at[dep.station].append(dep)
    summary = {
        "photos": len({d.media_id for d in data.detections}),
        "detections": len(animals),
        "encounters": len({d.encounter or d.media_id for d in animals}),
        "individuals": sum(1 for c in cards if c.confirmed),
        "new": sum(1 for c in cards if not c.confirmed),
        "pending_reviews": pending_reviews(data.data_dir / "catalog.sqlite"),
        "season_review": sum(1 for d in animals if d.decision == "review"),
        "camera_days": round(sum(camera_days(d) for d in data.deployments), 1),
        "stations": len(stations),
        "cameras": len({(d.station, d.camera) for d in data.deployments}),
    }
    return {
        "title": title or "Season report",
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "period": (start, end),
        "options": data.options,
        "summary": summary,
        "station_rows": [{"station": s, "cameras": sorted({d.camera or "-" for d in cameras_at[s]}),
                          "latlon": shown.get(s, (None, None)),
                          "camera_days": round(sum(camera_days(d) for d in cameras_at[s]), 1),
                          "detections": sum(per_day[s].values()),
                          "individuals": len({d.individual for d in animals if d.station == s and d.individual})}
                         for s in stations],
        "map": plots.station_map(coords, Counter({s: sum(c.values()) for s, c in per_day.items()}), colours,
                                 [(f.from_station, f.to_station) for f in flags
                                  if f.from_station in coords and f.to_station in coords]),
        "per_station_chart": plots.detections_per_station(per_day, start.date(), end.date(), colours) if per_day else "",
        "sightings_chart": plots.sightings_chart(
            [(who, t, st) for who in sorted(by_individual)
             for t, st in _daily([(d.timestamp, d.station) for d in by_individual[who] if d.timestamp])], colours)
        if any(d.individual and d.timestamp for d in animals) else "",
        "cards": [c for c in cards if c.confirmed],
        "groups": [c for c in cards if not c.confirmed],
        "travel": flags,
        "warnings": data.warnings(),
        "colours": colours,
    }


def render_report(data: ExportData, *, images_dir: Path | None = None, title: str | None = None,
                  nav: bool = False) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["svg"] = Markup  # our own SVG, built with escaped labels
    env.filters["days"] = lambda v: "" if v is None else f"{v:.1f}"
    ctx = report_context(data, images_dir=images_dir, title=title)
    return env.get_template("report.html.j2").render(**ctx, nav=nav, timedelta=timedelta)
