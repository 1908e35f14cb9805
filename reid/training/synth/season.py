"""A synthetic camera-trap season (`reid synth --season OUT [--seed N]`) for demos and tests.

It exercises what `reid season run` handles: stations with coordinates (two with a pair of
cameras facing each other, two with one), photos over a week with EXIF times, encounters where
both cameras of a pair fire within seconds on the two flanks of one animal, a camera whose clock
runs an hour fast (corrected by deployments.csv), two animals in one frame, empty frames, a
low-confidence false detection, a file MegaDetector failed on, a photo with no usable time, the
same file twice, and a known leopard photographed 150 km apart two hours later.

Writes OUT/images/STATION/CAMERA/*.jpg, OUT/deployments.csv, OUT/megadetector.json (format 1.4,
boxes with a little noise), OUT/known.csv (EVAL.md labels of earlier photos of three of the
individuals, one of them by its left flank only: enroll it before the season) and
OUT/truth.csv (path, box, identity, flank, encounter for every animal in every image; path
relative to OUT/images, box x,y,w,h in pixels).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from reid.training.synth import RenderConfig, identity_name, render

FRAME = (384, 288)  # (w, h) of a season photo
STATIONS = {  # name: (lat, lon, cameras)
    "ST01": (43.700, 55.100, ("CAM-A", "CAM-B")),
    "ST02": (43.760, 55.280, ("CAM-A", "CAM-B")),
    "ST03": (43.900, 55.600, ("CAM-A",)),
    "ST04": (45.000, 56.900, ("CAM-A",)),  # ~190 km from ST03
}
CLOCK_FAST = ("ST01", "CAM-B", 3600)  # this camera's clock is an hour fast
KNOWN = (300, 301, 302)  # enrolled before the season (302 by its left flank only)
SEASON_START = datetime(2024, 4, 1)

# (truth encounter, day, hour, station, [(camera, [(individual, flank), ...], frames, offset_s)])
EVENTS = [
    ("T01", 0, 21.0, "ST01", [("CAM-A", [(302, "left")], 2, 0), ("CAM-B", [(302, "right")], 2, 1)]),
    ("T02", 1, 22.0, "ST01", [("CAM-A", [(303, "left")], 2, 0), ("CAM-B", [(303, "right")], 2, 1)]),
    ("T03", 2, 3.0, "ST03", [("CAM-A", [(300, "right")], 2, 0)]),
    ("T04", 2, 5.0, "ST04", [("CAM-A", [(300, "left")], 2, 0)]),
    ("T05", 3, 20.0, "ST03", [("CAM-A", [(301, "left"), (304, "right")], 2, 0)]),
    ("T06", 5, 1.0, "ST02", [("CAM-A", [(304, "left")], 1, 0), ("CAM-B", [(304, "right")], 1, 2)]),
    ("T07", 6, 23.5, "ST02", [("CAM-A", [(303, "left")], 2, 0)]),
    ("T08", 7, 2.0, "ST01", [("CAM-A", [], 2, 0)]),  # empty frames (wind, a false trigger)
]


def _write_jpeg(path: Path, rgb: np.ndarray, when: datetime | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgb)
    kwargs = {}
    if when is not None:
        exif = Image.Exif()
        exif[0x0132] = when.strftime("%Y:%m:%d %H:%M:%S")  # DateTime, as camera traps write it
        kwargs["exif"] = exif.tobytes()
    img.save(path, "JPEG", quality=92, **kwargs)


def _compose(tiles: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A frame of FRAME size: a blurred stretch of the first render as the scene, each render
    pasted on it side by side; returns the frame and each animal's box (x, y, w, h)."""
    import cv2

    w, h = FRAME
    base = tiles[0] if tiles else np.full((64, 64, 3), 120, np.uint8)
    frame = cv2.GaussianBlur(cv2.resize(base, (w, h)), (0, 0), 9)
    boxes = []
    slot = w // max(1, len(tiles))
    for n, tile in enumerate(tiles):
        th, tw = tile.shape[:2]
        x = n * slot + int(rng.integers(0, max(1, slot - tw + 1)))
        y = int(rng.integers(max(0, h - th - 40), h - th + 1))
        frame[y:y + th, x:x + tw] = tile
        boxes.append((x, y, tw, th))
    return frame, boxes


def write_season(out: str | Path, *, seed: int = 0) -> dict[str, int]:
    """Render the season into `out`; returns counts of what was written."""
    out = Path(out)
    images = out / "images"
    rng = np.random.default_rng([seed, 4242])
    single = RenderConfig(size=(288, 216), night_prob=0.0, hard=False)
    double = RenderConfig(size=(192, 144), night_prob=0.0, hard=False)
    counters: dict[tuple[str, str], int] = {}
    truth: list[list[str]] = []
    md_images: list[dict] = []
    written: list[tuple[str, datetime | None]] = []

    def next_name(station: str, camera: str) -> str:
        counters[(station, camera)] = counters.get((station, camera), 0) + 1
        return f"{station}/{camera}/IMG_{counters[(station, camera)]:04d}.JPG"

    def camera_clock(station: str, camera: str, when: datetime) -> datetime:
        fast = CLOCK_FAST[2] if (station, camera) == CLOCK_FAST[:2] else 0
        return when + timedelta(seconds=fast)

    def detections(boxes: list[tuple[int, int, int, int]]) -> list[dict]:
        w, h = FRAME
        out_d = []
        for x, y, bw, bh in boxes:
            jx, jy = rng.normal(0, 0.01, 2)
            out_d.append({"category": "1", "conf": round(float(rng.uniform(0.82, 0.97)), 3),
                          "bbox": [round(max(0.0, x / w + jx), 4), round(max(0.0, y / h + jy), 4),
                                   round(bw / w, 4), round(bh / h, 4)]})
        return out_d

    for enc, day, hour, station, shots in EVENTS:
        t0 = SEASON_START + timedelta(days=day, hours=hour)
        night = hour >= 19 or hour < 6
        for camera, animals, frames, offset in shots:
            bg = int(rng.integers(1 << 62))
            for f in range(frames):
                when = t0 + timedelta(seconds=offset + 2 * f)
                cfg = single if len(animals) <= 1 else double
                tiles = [render(ind, flank, np.random.default_rng([seed, ind, day, f, bg % 997]), cfg,
                                night=night) for ind, flank in animals]
                frame, boxes = _compose(tiles, rng)
                rel = next_name(station, camera)
                _write_jpeg(images / rel, frame, camera_clock(station, camera, when))
                written.append((rel, when))
                dets = detections(boxes)
                if not animals and f == 0:
                    dets = [{"category": "1", "conf": 0.12, "bbox": [0.1, 0.6, 0.2, 0.2]}]  # below 0.2
                md_images.append({"file": rel, "detections": dets})
                for (ind, flank), box in zip(animals, boxes, strict=True):
                    truth.append([rel, ",".join(map(str, box)), identity_name(ind), flank, enc])

    # a photo with no usable time (no EXIF, no date in the name) of a newcomer seen once
    tile = render(305, "right", np.random.default_rng([seed, 305]), single, night=False)
    frame, boxes = _compose([tile], rng)
    rel = "ST03/CAM-A/no_time.jpg"
    _write_jpeg(images / rel, frame, None)
    md_images.append({"file": rel, "detections": detections(boxes)})
    truth.append([rel, ",".join(map(str, boxes[0])), identity_name(305), "right", "T09"])
    # the same bytes twice (a card copied twice)
    first = "ST03/CAM-A/IMG_0001.JPG"
    dup = "ST03/CAM-A/IMG_0001_copy.JPG"
    (images / dup).write_bytes((images / first).read_bytes())
    md_images.append({"file": dup, "detections": next(m for m in md_images if m["file"] == first)["detections"]})
    truth.extend([[dup, *t[1:]] for t in truth if t[0] == first])
    # a file MegaDetector could not read
    broken = "ST04/CAM-A/IMG_0099.JPG"
    data = (images / "ST04/CAM-A/IMG_0001.JPG").read_bytes()
    (images / broken).write_bytes(data[: len(data) // 3])
    md_images.append({"file": broken, "failure": "Failure image access"})

    # the detector name as the first seasons wrote it (the module is now reid.training.synth.season)
    md = {"info": {"format_version": "1.4", "detector": "synthetic (reid.synth_season)"},
          "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
          "images": sorted(md_images, key=lambda m: m["file"])}
    (out / "megadetector.json").write_text(json.dumps(md, indent=1) + "\n", encoding="utf-8")

    with open(out / "deployments.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["deploymentID", "locationID", "cameraID", "latitude", "longitude", "deploymentStart",
                    "deploymentEnd", "clock_offset"])
        for station, (lat, lon, cams) in STATIONS.items():
            for cam in cams:
                offset = -CLOCK_FAST[2] if (station, cam) == CLOCK_FAST[:2] else 0
                w.writerow([f"{station}-{cam}", station, cam, lat, lon, SEASON_START.isoformat(),
                            (SEASON_START + timedelta(days=10)).isoformat(), offset])

    # earlier photos of the known individuals (302: left flank only), as a gallery labels CSV
    known_rows = []
    lat, lon, _ = STATIONS["ST01"]
    for ind in KNOWN:
        flanks = ("left",) if ind == 302 else ("left", "right")
        for flank in flanks:
            for k in range(2):
                img = render(ind, flank, np.random.default_rng([seed, ind, 77, k, len(flank)]), single, night=False)
                rel = f"known/{identity_name(ind)}_{flank}_{k}.jpg"
                when = SEASON_START - timedelta(days=30 - k)
                _write_jpeg(out / rel, img, when)
                known_rows.append([rel, identity_name(ind), flank, f"{identity_name(ind)}-{flank}-{k}",
                                   when.isoformat(), "ST01", lat, lon])
    with open(out / "known.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "identity", "viewpoint", "sighting", "timestamp", "station", "lat", "lon"])
        w.writerows(known_rows)
    with open(out / "truth.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "box", "identity", "flank", "encounter"])
        w.writerows(sorted(truth))
    return {"photos": len(md_images), "animals_in_photos": len(truth), "known_photos": len(known_rows)}


__all__ = ["write_season"]
