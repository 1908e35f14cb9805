"""A season as field teams store it: STATION/CAMERA/... folders, a deployments CSV, photo times.

Station and camera come from the folder layout (``STATION/CAMERA/file.jpg``; a file directly
in ``STATION/`` has camera ``STATION``) or from a deployments CSV row whose ``folder`` (or
``deploymentID``) is the photo's folder. Times come from EXIF (DateTimeOriginal, DateTime) or
the file name (``..20240301_213455..``, ``2024-03-01 21-34-55``), corrected by the camera's
clock offset (seconds added to the camera's time). A photo without a usable time keeps
``timestamp=None`` and is reported, not dropped.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from reid import imageio
from reid.batch import walk_folder
from reid.errors import ReidError

_NAME_TIME = re.compile(r"(20\d\d|19\d\d)[-_:.]?([01]\d)[-_:.]?([0-3]\d)[-_T ]?([0-2]\d)[-_:.h]?([0-5]\d)[-_:.m]?([0-5]\d)")
_OFFSET = re.compile(r"^([+-]?)(\d+):(\d\d)(?::(\d\d))?$")


@dataclass
class Deployment:
    """One camera at one station for a period (Camtrap DP's deployment)."""

    deployment_id: str
    station: str
    camera: str
    folder: str = ""  # path relative to SEASON_DIR, '/'-separated ("" = STATION/CAMERA)
    lat: float | None = None
    lon: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    clock_offset_s: float = 0.0  # add to the camera's time to get true local time


@dataclass
class SeasonPhoto:
    """One file of the season, with where and (corrected) when it was taken."""

    path: str  # relative to SEASON_DIR, '/'-separated
    file: Path
    station: str
    camera: str
    deployment: Deployment | None
    timestamp: datetime | None  # true local time (clock offset applied)
    time_source: str  # "exif", "filename" or "none"
    sha256: str
    is_video: bool


def _parse_time(text: str, where: str) -> datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=None)
    except ValueError:
        raise ReidError(f"{where}: {text!r} is not an ISO 8601 time (e.g. 2024-03-01T21:34:55)") from None


def _parse_offset(text: str, where: str) -> float:
    text = (text or "").strip()
    if not text:
        return 0.0
    m = _OFFSET.match(text)
    if m:
        sign = -1.0 if m.group(1) == "-" else 1.0
        return sign * (int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4) or 0))
    try:
        return float(text)
    except ValueError:
        raise ReidError(f"{where}: clock offset {text!r} is not seconds or [+-]HH:MM[:SS]") from None


def optional_float(text: str, where: str) -> float | None:
    """A CSV cell as a number: empty is None, anything else not a number is a one-line error."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ReidError(f"{where}: {text!r} is not a number") from None


def _pick(row: dict[str, str], *names: str) -> str:
    for n in names:
        if row.get(n, "").strip():
            return row[n].strip()
    return ""


def read_deployments(csv_path: str | Path) -> list[Deployment]:
    """Columns (case-insensitive; Camtrap DP names or short ones): deploymentID and/or folder,
    locationID|station, cameraID|camera, latitude|lat, longitude|lon, deploymentStart|start,
    deploymentEnd|end, clock_offset (seconds or [+-]HH:MM[:SS], added to the camera's time)."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ReidError(f"{csv_path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReidError(f"{csv_path}: not readable UTF-8 text ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    out = []
    for n, raw in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "") for k, v in raw.items()}
        where = f"{csv_path}, line {n}"
        folder = _pick(row, "folder").strip("/")
        dep_id = _pick(row, "deploymentid") or folder
        station = _pick(row, "locationid", "station", "locationname")
        camera = _pick(row, "cameraid", "camera")
        if not station and folder:
            station = folder.split("/")[0]
        if not camera and folder:
            camera = folder.split("/")[-1]
        if not dep_id:
            dep_id = f"{station}/{camera}" if camera else station
        if not station:
            raise ReidError(f"{where}: no station (locationID / station / folder)")
        out.append(Deployment(
            deployment_id=dep_id, station=station, camera=camera or station, folder=folder,
            lat=optional_float(_pick(row, "latitude", "lat"), where), lon=optional_float(_pick(row, "longitude", "lon"), where),
            start=_parse_time(_pick(row, "deploymentstart", "start"), where),
            end=_parse_time(_pick(row, "deploymentend", "end"), where),
            clock_offset_s=_parse_offset(_pick(row, "clock_offset", "clockoffset", "clock_offset_s"), where)))
    return out


def camera_time(file: Path) -> tuple[datetime | None, str]:
    """The camera's own time of a photo (EXIF, then the file name) without decoding pixels."""
    if file.suffix.lower() in imageio.IMAGE_SUFFIXES:
        try:
            with Image.open(file) as img:
                t = imageio._exif_timestamp(img)
            if t is not None:
                return t, "exif"
        except (OSError, ValueError, Image.DecompressionBombError):
            pass  # the decode later reports what is wrong with the file
    m = _NAME_TIME.search(file.name)
    if m:
        try:
            return datetime(*(int(g) for g in m.groups())), "filename"  # type: ignore[misc]
        except ValueError:
            pass
    return None, "none"


def _layout(path: str) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) >= 3:
        return parts[0], parts[1]
    if len(parts) == 2:
        return parts[0], parts[0]
    return "", ""


def _deployment_for(photo_folder: str, station: str, camera: str, when: datetime | None,
                    deployments: list[Deployment]) -> Deployment | None:
    """The deployment whose folder is (a parent of) the photo's, else the station/camera one;
    several (a camera moved or re-deployed): the one whose period holds the camera time."""
    hits = [d for d in deployments if d.folder and (photo_folder == d.folder or photo_folder.startswith(d.folder + "/"))]
    if not hits:
        hits = [d for d in deployments if d.deployment_id == photo_folder]
    if not hits:
        hits = [d for d in deployments if not d.folder and d.station == station and d.camera == camera]
    if len(hits) > 1 and when is not None:
        timed = [d for d in hits if (d.start is None or d.start - timedelta(days=1) <= when)
                 and (d.end is None or when <= d.end + timedelta(days=1))]
        hits = timed or hits
    return hits[0] if hits else None


def ingest(season_dir: str | Path, deployments: list[Deployment] | None = None) -> list[SeasonPhoto]:
    """Every image and video under `season_dir` (sorted by path) with station, camera and time."""
    season_dir = Path(season_dir)
    if not season_dir.is_dir():
        raise ReidError(f"{season_dir}: not a folder")
    deployments = deployments or []
    photos = []
    for item in walk_folder(season_dir):
        station, camera = _layout(item.path)
        folder = item.path.rsplit("/", 1)[0] if "/" in item.path else ""
        raw_time, source = camera_time(item.file)
        dep = _deployment_for(folder, station, camera, raw_time, deployments)
        if dep is not None:
            station, camera = dep.station, dep.camera
        when = raw_time + timedelta(seconds=dep.clock_offset_s) if raw_time and dep else raw_time
        try:
            data = item.file.read_bytes()
        except OSError:
            data = b""
        photos.append(SeasonPhoto(
            path=item.path, file=item.file, station=station or "", camera=camera or "", deployment=dep,
            timestamp=when, time_source=source, sha256=hashlib.sha256(data).hexdigest(), is_video=item.is_video))
    return photos


__all__ = ["Deployment", "SeasonPhoto", "camera_time", "ingest", "read_deployments"]
