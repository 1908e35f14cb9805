"""Read MegaDetector (or AddaxAI) detections: which boxes of which photo show an animal.

Two shapes are accepted:

* the MegaDetector batch output (format_version >= 1.3; AddaxAI writes the same):
  ``{"images": [{"file", "detections": [{"category", "conf", "bbox"}], "failure"?}],
  "detection_categories": {"1": "animal", ...}}``, ``bbox`` normalised
  ``[x_min, y_min, width, height]`` from the top-left; videos carry ``frame_number`` (on the
  detection, or on an image entry naming the video);
* the newer list-shaped output: a JSON list (or ``{"annotations": [...]}``) of
  ``{"file"|"img_id", "detections": [{"category": NAME, "conf"|"confidence", "bbox": [x1, y1,
  x2, y2] pixels}]}``, or parallel lists ``"bbox"``, ``"category"``, ``"confidence"``.

Anything else is refused with a message saying how to convert it. The animal category is
looked up by NAME ("animal"), never by number: the numbering differs between versions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reid.errors import ReidError

#: MegaDetector's documented typical confidence threshold for animals (its README suggests
#: 0.2 for MDv5); settable with --detection-threshold.
DEFAULT_THRESHOLD = 0.2
ANIMAL = "animal"
_CONVERT_HINT = ("convert it to the MegaDetector batch output format (format_version >= 1.3; e.g. with "
                 "MegaDetector's postprocessing tools or AddaxAI's 'export JSON') and try again")


@dataclass(frozen=True)
class Detection:
    """One animal box. Exactly one of `norm` (MegaDetector: x, y, w, h as shares of the image)
    and `xyxy` (pixels, list-shaped output) is set."""

    conf: float
    norm: tuple[float, float, float, float] | None = None
    xyxy: tuple[float, float, float, float] | None = None
    frame_number: int | None = None

    def pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box as x, y, w, h in pixels of a width x height image, clipped to it."""
        if self.norm is not None:
            x, y, w, h = self.norm
            x0, y0, x1, y1 = x * width, y * height, (x + w) * width, (y + h) * height
        else:
            x0, y0, x1, y1 = self.xyxy  # type: ignore[misc]
        x0, x1 = max(0.0, min(x0, width)), max(0.0, min(x1, width))
        y0, y1 = max(0.0, min(y0, height)), max(0.0, min(y1, height))
        return (round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1))


@dataclass
class Detections:
    """Animal detections per file (paths as in the JSON, '/'-separated) above `threshold`."""

    threshold: float
    by_file: dict[str, list[Detection]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    below_threshold: int = 0  # animal boxes dropped for low confidence
    source: str = ""

    def _key(self, rel_path: str) -> str | None:
        """The JSON entry for a photo: the same relative path, or the one sharing the longest tail
        (MegaDetector may have run on the season folder, its parent or a copy of it)."""
        rel = PurePosixPath(rel_path).as_posix()
        if rel in self.by_file or rel in self.failures:
            return rel
        best, best_len = None, 0
        parts = PurePosixPath(rel).parts
        for key in self._by_name.get(parts[-1], ()):
            kparts = PurePosixPath(key).parts
            n = 0
            while n < min(len(parts), len(kparts)) and parts[-1 - n] == kparts[-1 - n]:
                n += 1
            if n > best_len:
                best, best_len = key, n
        return best

    @property
    def _by_name(self) -> dict[str, list[str]]:
        index = getattr(self, "_name_index", None)
        if index is None:
            index = {}
            for key in (*self.by_file, *self.failures):
                index.setdefault(PurePosixPath(key).name, []).append(key)
            self._name_index = index
        return index

    def lookup(self, rel_path: str) -> tuple[str, list[Detection] | str | None]:
        """("boxes", [...]) for a photo in the JSON (empty list: nothing above threshold),
        ("failure", message) where MegaDetector failed on it, ("missing", None) when absent."""
        key = self._key(rel_path)
        if key is None:
            return "missing", None
        if key in self.failures:
            return "failure", self.failures[key]
        return "boxes", self.by_file[key]


def _conf(value: Any, where: str) -> float:
    try:
        conf = float(value)
    except (TypeError, ValueError):
        raise ReidError(f"{where}: confidence {value!r} is not a number") from None
    if not math.isfinite(conf) or not 0.0 <= conf <= 1.0:
        raise ReidError(f"{where}: confidence {value!r} is not in [0, 1]")
    return conf


def _box(value: Any, where: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ReidError(f"{where}: bbox {value!r} is not four numbers") from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ReidError(f"{where}: bbox {value!r} is not four numbers")
    return box  # type: ignore[return-value]


def _frame(value: Any) -> int | None:
    return None if value is None else int(value)


def _batch_output(data: dict[str, Any], det: Detections, name: str) -> None:
    """MegaDetector batch output (format_version >= 1.3)."""
    version = str((data.get("info") or {}).get("format_version", "1.3"))
    try:
        if tuple(int(p) for p in version.split(".")[:2]) < (1, 1):
            raise ReidError(f"{name}: MegaDetector output format {version} is too old; {_CONVERT_HINT}")
    except ValueError:
        pass  # an unusual version string: read it if the fields are there
    categories = data.get("detection_categories")
    if not isinstance(categories, dict):
        raise ReidError(f"{name}: no 'detection_categories' in the MegaDetector output; {_CONVERT_HINT}")
    animal = {str(k) for k, v in categories.items() if str(v).strip().lower() == ANIMAL}
    if not animal:
        raise ReidError(f"{name}: detection_categories {categories} has no category named 'animal'")
    images = data.get("images")
    if not isinstance(images, list):
        raise ReidError(f"{name}: 'images' is not a list; {_CONVERT_HINT}")
    for n, entry in enumerate(images):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ReidError(f"{name}: images[{n}] has no 'file'")
        file = PurePosixPath(entry["file"].replace("\\", "/")).as_posix()
        if entry.get("failure"):
            det.failures[file] = str(entry["failure"])
            continue
        boxes = det.by_file.setdefault(file, [])
        image_frame = _frame(entry.get("frame_number"))
        for d in entry.get("detections") or []:
            where = f"{name}: {file}"
            if str(d.get("category")) not in animal:
                continue
            conf = _conf(d.get("conf"), where)
            if conf < det.threshold:
                det.below_threshold += 1
                continue
            x, y, w, h = _box(d.get("bbox"), where)
            if w <= 0 or h <= 0:
                continue
            boxes.append(Detection(conf=conf, norm=(x, y, w, h),
                                   frame_number=_frame(d.get("frame_number", image_frame))))


def _list_output(entries: list[Any], det: Detections, name: str, categories: dict[str, str]) -> None:
    """The list-shaped output: names (or ids with a categories map) and pixel [x1, y1, x2, y2]."""
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReidError(f"{name}: entry {n} is not an object; {_CONVERT_HINT}")
        file = entry.get("file") or entry.get("img_id") or entry.get("image") or entry.get("image_path")
        if not isinstance(file, str):
            raise ReidError(f"{name}: entry {n} names no file ('file' or 'img_id'); {_CONVERT_HINT}")
        file = PurePosixPath(file.replace("\\", "/")).as_posix()
        if entry.get("failure"):
            det.failures[file] = str(entry["failure"])
            continue
        if isinstance(entry.get("detections"), list):
            raw = entry["detections"]
        elif isinstance(entry.get("bbox"), list):  # parallel lists
            cats = entry.get("category") or entry.get("class_id") or [ANIMAL] * len(entry["bbox"])
            confs = entry.get("confidence") or entry.get("conf") or []
            if not (len(cats) == len(confs) == len(entry["bbox"])):
                raise ReidError(f"{name}: {file}: bbox, category and confidence lists differ in length")
            raw = [{"bbox": b, "category": c, "conf": p} for b, c, p in zip(entry["bbox"], cats, confs, strict=True)]
        else:
            raise ReidError(f"{name}: {file}: no 'detections'; {_CONVERT_HINT}")
        boxes = det.by_file.setdefault(file, [])
        for d in raw:
            cat = d.get("category", d.get("label", ""))
            cat = categories.get(str(cat), cat) if not isinstance(cat, str) or cat.isdigit() else cat
            if str(cat).split()[0].lower() != ANIMAL:  # "animal" or a label such as "animal 0.93"
                continue
            conf = _conf(d.get("conf", d.get("confidence")), f"{name}: {file}")
            if conf < det.threshold:
                det.below_threshold += 1
                continue
            x0, y0, x1, y1 = _box(d.get("bbox"), f"{name}: {file}")
            if x1 <= x0 or y1 <= y0:
                raise ReidError(f"{name}: {file}: bbox {d.get('bbox')} is not [x1, y1, x2, y2] in pixels; "
                                f"{_CONVERT_HINT}")
            boxes.append(Detection(conf=conf, xyxy=(x0, y0, x1, y1), frame_number=_frame(d.get("frame_number"))))


def load_detections(path: str | Path, *, threshold: float = DEFAULT_THRESHOLD) -> Detections:
    """Parse a detections JSON; ReidError (one line) for anything unreadable or unknown."""
    path = Path(path)
    if not 0.0 <= threshold <= 1.0:
        raise ReidError(f"detection threshold must be in [0, 1], not {threshold}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReidError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReidError(f"{path}: not a readable JSON file ({exc})") from None
    det = Detections(threshold=threshold, source=str(path))
    if isinstance(data, dict) and "images" in data:
        _batch_output(data, det, path.name)
    elif isinstance(data, list):
        _list_output(data, det, path.name, {})
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        cats = {str(k): str(v) for k, v in (data.get("categories") or {0: ANIMAL}).items()}
        _list_output(data["annotations"], det, path.name, cats)
    else:
        raise ReidError(f"{path}: not MegaDetector output (no 'images' list); {_CONVERT_HINT}")
    return det


__all__ = ["DEFAULT_THRESHOLD", "Detection", "Detections", "load_detections"]
