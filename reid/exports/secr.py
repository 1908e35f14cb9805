"""secr text input for `read.capthist(captfile, trapfile, fmt = "trapID", detector = "proximity")`.

captures.txt: `Session ID Occasion Detector`, one row per individual, occasion and detector
(a camera station is a proximity detector: several photos in one occasion are one detection).
traps.txt: `Detector x y` in metres (UTM, zone in the header) and a usage string, one 0/1
per occasion, from the cameras' operating periods. individuals.csv says which id is which
animal, whether it is confirmed, and which flanks it is known by.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from reid.exports import register_exporter
from reid.exports.capture import CaptureHistory, build_capture_history
from reid.exports.records import ExportData


def _header(h: CaptureHistory, data: ExportData) -> list[str]:
    last = h.start.date().toordinal() + h.occasions * h.occasion_days - 1
    where = (f"UTM zone {h.zone.label} (EPSG:{h.zone.epsg}), metres" if h.zone
             else "metres from an undisclosed origin (coordinates withheld)")
    lines = [f"# written by reid export secr; coordinates: {where}",
             f"# occasion 1 starts {h.start:%Y-%m-%d}; {h.occasions} occasions of {h.occasion_days} day(s), "
             f"the last ends {date.fromordinal(last):%Y-%m-%d}",
             f"# flanks: {data.options.flank}; "
             f"{'confirmed identifications only' if data.options.confirmed_only else 'confirmed and machine identifications'}"]
    return lines


def write_captures(h: CaptureHistory, path: Path, session: str, header: list[str]) -> int:
    rows = sorted({(c.individual.id, c.occasion, c.detector) for c in h.captures}, key=lambda r: (r[0], r[1], r[2]))
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(header) + "\n# Session ID Occasion Detector\n")
        for ind, occ, det in rows:
            fh.write(f"{session} {ind} {occ} {det}\n")
    return len(rows)


def write_traps(h: CaptureHistory, path: Path, header: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(header) + "\n# Detector x y usage\n")
        for det_id in sorted(h.usage):
            x, y = h.xy[det_id]
            fh.write(f"{det_id} {x:.1f} {y:.1f} {h.usage[det_id]}\n")


def write_individuals(h: CaptureHistory, path: Path) -> None:
    """The key to the ids: name, status and flanks, with the number of detections exported."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "individual", "status", "flanks", "detections", "captures"])
        for ind in sorted(h.individuals.values(), key=lambda i: i.id):
            mine = [c for c in h.captures if c.individual.key == ind.key]
            w.writerow([ind.id, ind.key, "confirmed" if ind.confirmed else "putative new (machine)", ind.flanks,
                        len(mine), len({(c.occasion, c.detector) for c in mine})])


def write_detectors(h: CaptureHistory, data: ExportData, path: Path) -> None:
    """Which station each detector id is, with its cameras (and coordinates unless withheld)."""
    withheld = data.options.coordinates.mode == "withhold"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Detector", "station", "cameras", "latitude", "longitude", "x", "y"])
        for station, det_id in sorted(h.detectors.items(), key=lambda kv: kv[1]):
            cams = [c for c in h.cameras if c.station == station]
            lat, lon = (None, None) if withheld else data.options.coordinates.apply(cams[0].lat, cams[0].lon)
            x, y = h.xy[det_id]
            w.writerow([det_id, station, " ".join(sorted({c.camera or "1" for c in cams})),
                        "" if lat is None else lat, "" if lon is None else lon, f"{x:.1f}", f"{y:.1f}"])


@register_exporter
class SecrExporter:
    name = "secr"
    description = "secr capture and trap files (read.capthist, fmt = 'trapID')"

    def __init__(self, session: str = "1") -> None:
        self.session = session

    def write(self, data: ExportData, out_dir: Path) -> list[Path]:
        h = build_capture_history(data)
        header = _header(h, data)
        files = [out_dir / "captures.txt", out_dir / "traps.txt", out_dir / "individuals.csv",
                 out_dir / "detectors.csv"]
        write_captures(h, files[0], self.session, header)
        write_traps(h, files[1], header)
        write_individuals(h, files[2])
        write_detectors(h, data, files[3])
        return files
