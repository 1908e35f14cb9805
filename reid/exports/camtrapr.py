"""camtrapR tables: a camera table for `cameraOperation` and an individual record table for
`spatialDetectionHistory` / `recordTableIndividual`-style analyses.

camera_table.csv: one row per camera: `Station, Camera, utm_x, utm_y, utm_zone, Setup_date,
Retrieval_date, Problem1_from, Problem1_to, ...` (dates `YYYY-MM-DD`). With two cameras at a
station use `cameraOperation(..., cameraCol = "Camera", byCamera = FALSE, allCamsOn = FALSE,
camerasIndependent = FALSE)`.
record_table.csv: one row per identified detection: `Station, Species, Individual,
DateTimeOriginal, Date, Time, delta.time.secs/mins/hours/days` (since the same individual's
previous record at that station), `Directory, FileName`, then `Camera, Flank, Flanks_known,
Status, Classification, Probability`.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import PurePosixPath

from reid.exports import register_exporter
from reid.exports.capture import build_capture_history
from reid.exports.records import Deployment, ExportData

CAMERA_COLUMNS = ["Station", "Camera", "utm_x", "utm_y", "utm_zone", "Setup_date", "Retrieval_date"]
RECORD_COLUMNS = ["Station", "Species", "Individual", "DateTimeOriginal", "Date", "Time", "delta.time.secs",
                  "delta.time.mins", "delta.time.hours", "delta.time.days", "Directory", "FileName", "Camera",
                  "Flank", "Flanks_known", "Status", "Classification", "Probability"]
SPECIES = "Panthera pardus tulliana"


def merged_cameras(cameras: list[Deployment]) -> list[Deployment]:
    """One row per camera, as cameraOperation wants: several deployments of one camera become
    one from the first setup to the last retrieval, the gaps between them problem periods."""
    by_camera: dict[tuple[str, str], list[Deployment]] = {}
    for cam in cameras:
        by_camera.setdefault((cam.station, cam.camera), []).append(cam)
    out = []
    for (station, camera), deps in by_camera.items():
        deps.sort(key=lambda d: d.start)  # type: ignore[arg-type,return-value]
        problems = [p for d in deps for p in d.problems]
        problems += [(a.end, b.start) for a, b in zip(deps, deps[1:], strict=False)
                     if b.start > a.end]  # type: ignore[operator]
        out.append(Deployment(deps[0].deployment_id, station, camera, deps[0].lat, deps[0].lon, deps[0].start,
                              max(d.end for d in deps), tuple(sorted(problems))))  # type: ignore[type-var]
    return out


@register_exporter
class CamtrapRExporter:
    name = "camtrapr"
    description = "camtrapR camera table and individual record table (UTM metres)"

    def write(self, data: ExportData, out_dir):  # type: ignore[no-untyped-def]
        h = build_capture_history(data)
        zone = h.zone.label if h.zone else "withheld"
        cameras = merged_cameras(h.cameras)
        problems = max((len(c.problems) for c in cameras), default=0)
        cam_path, rec_path = out_dir / "camera_table.csv", out_dir / "record_table.csv"
        with open(cam_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CAMERA_COLUMNS + [f"Problem{n}_{e}" for n in range(1, problems + 1) for e in ("from", "to")])
            for cam in sorted(cameras, key=lambda c: (h.detectors[c.station], c.camera)):
                x, y = h.xy[h.detectors[cam.station]]
                periods = [f"{t:%Y-%m-%d}" for a, b in cam.problems for t in (a, b)]
                w.writerow([h.detectors[cam.station], cam.camera or "1", f"{x:.1f}", f"{y:.1f}", zone,
                            f"{cam.start:%Y-%m-%d}", f"{cam.end:%Y-%m-%d}",
                            *periods, *[""] * (2 * problems - len(periods))])
        previous: dict[tuple[str, str], datetime] = {}
        with open(rec_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(RECORD_COLUMNS)
            for c in sorted(h.captures, key=lambda c: (c.detection.timestamp, c.detector, c.detection.path)):
                det, ts = c.detection, c.detection.timestamp
                assert ts is not None  # build_capture_history keeps timed detections only
                last = previous.get((c.detector, c.individual.id))
                delta = 0.0 if last is None else (ts - last).total_seconds()
                previous[(c.detector, c.individual.id)] = ts
                path = PurePosixPath(det.path)
                w.writerow([c.detector, SPECIES, c.individual.id, f"{ts:%Y-%m-%d %H:%M:%S}", f"{ts:%Y-%m-%d}",
                            f"{ts:%H:%M:%S}", int(delta), int(delta // 60), int(delta // 3600), int(delta // 86400),
                            str(path.parent), path.name, det.camera or "1", det.flank, c.individual.flanks,
                            "confirmed" if det.method == "human" else "machine", det.decision,
                            "" if det.probability is None else f"{det.probability:.3f}"])
        return [cam_path, rec_path]
