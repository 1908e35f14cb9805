"""Read and write the EVAL.md labels CSV (path, identity, viewpoint, sighting, ...)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from reid.errors import LabelsError
from reid.keypoints.crops import parse_crop
from reid.names import InvalidNameError, validate_name

COLUMNS = ("path", "identity", "viewpoint", "sighting", "timestamp", "station", "lat", "lon",
           "bbox_x", "bbox_y", "bbox_w", "bbox_h", "crop")
_BOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


@dataclass(frozen=True)
class LabelRow:
    """One image of a labels CSV; `path` is as written, `file` resolved against the CSV's folder."""

    line: int
    path: str
    file: Path
    identity: str | None = None
    viewpoint: str | None = None
    sighting: str | None = None
    timestamp: str | None = None
    station: str | None = None
    lat: float | None = None
    lon: float | None = None
    box: tuple[float, float, float, float] | None = None
    crop: bool | None = None  # the photo is already a crop of the animal (column `crop`); None: detect


def _float(value: str, column: str, line: int, csv_path: Path) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        f = float(value)
    except ValueError:
        raise LabelsError(f"{csv_path}, line {line}: {column} is {value!r}, not a number") from None
    if not math.isfinite(f):
        raise LabelsError(f"{csv_path}, line {line}: {column} must be a finite number")
    return f


def _crop(value: str, line: int, csv_path: Path) -> bool | None:
    try:
        return parse_crop(value)
    except ValueError as exc:
        raise LabelsError(f"{csv_path}, line {line}: {exc}") from None


def read_labels(csv_path: str | Path, *, require_identity: bool = False) -> list[LabelRow]:
    """Parse a labels CSV; LabelsError names the file, line and column of the first problem."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise LabelsError(f"{csv_path}: no such file")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelsError(f"{csv_path}: not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    required = ["path"] + (["identity"] if require_identity else [])
    missing = [c for c in required if c not in header]
    if missing:
        raise LabelsError(f"{csv_path}: missing required column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}")
    has_box = [c for c in _BOX if c in header]
    if has_box and len(has_box) != 4:
        raise LabelsError(f"{csv_path}: bbox columns must come as all four of {', '.join(_BOX)}")
    rows: list[LabelRow] = []
    root = csv_path.parent
    for line, rec in enumerate(reader, start=2):
        def get(column: str, rec: dict = rec) -> str:
            return (rec.get(column) or "").strip()

        path = get("path")
        if not path:
            raise LabelsError(f"{csv_path}, line {line}: empty path")
        identity = get("identity") or None
        if require_identity and not identity:
            raise LabelsError(f"{csv_path}, line {line}: identity is empty (every gallery image needs one)")
        if identity is not None and require_identity:
            try:
                identity = validate_name(identity)
            except InvalidNameError as exc:
                raise LabelsError(f"{csv_path}, line {line}: {exc}") from None
        box = None
        if has_box and any(get(c) for c in _BOX):
            vals = [_float(get(c), c, line, csv_path) for c in _BOX]
            if any(v is None for v in vals):
                raise LabelsError(f"{csv_path}, line {line}: bbox needs all four values")
            box = tuple(vals)  # type: ignore[assignment]
            if box[2] <= 0 or box[3] <= 0:
                raise LabelsError(f"{csv_path}, line {line}: bbox width and height must be positive")
        rows.append(LabelRow(
            line=line, path=path, file=(root / path), identity=identity,
            viewpoint=get("viewpoint") or None, sighting=get("sighting") or None,
            timestamp=get("timestamp") or None, station=get("station") or None,
            lat=_float(get("lat"), "lat", line, csv_path), lon=_float(get("lon"), "lon", line, csv_path), box=box,
            crop=_crop(get("crop"), line, csv_path),
        ))
    if not rows:
        raise LabelsError(f"{csv_path}: no rows")
    return rows


def write_labels(csv_path: str | Path, rows: list[LabelRow]) -> Path:
    """Write rows with paths relative to the new CSV's folder."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        crop = any(r.crop is not None for r in rows)  # the column only where a row says something
        w.writerow(["path", "identity", "viewpoint", "sighting", "timestamp", "station", "lat", "lon", *_BOX,
                    *(["crop"] if crop else [])])
        for r in rows:
            rel = Path(_relpath(r.file.resolve(), csv_path.parent.resolve()))
            box = list(r.box) if r.box else ["", "", "", ""]
            w.writerow([rel.as_posix(), r.identity or "", r.viewpoint or "", r.sighting or "", r.timestamp or "",
                        r.station or "", "" if r.lat is None else r.lat, "" if r.lon is None else r.lon, *box,
                        *([("" if r.crop is None else str(r.crop).lower())] if crop else [])])
    return csv_path


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)
