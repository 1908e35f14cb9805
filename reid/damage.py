"""Damaged files in a data directory: found, moved aside (never deleted), recomputed.

Everything derived (keypoint caches, the keypoint index, the FAISS index) can be rebuilt
from the catalogue and the stored images, so a derived file that fails to load for any
reason is moved to `<data_dir>/quarantine/` with a log line and made again. The catalogue
itself cannot be rebuilt: a damaged `catalog.sqlite` is a one-line error saying how to
restore it (`reid restore`, docs/security.md).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reid.errors import ImageError, ReidError

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"


def quarantine(data_dir: Path, path: Path, reason: str) -> Path | None:
    """Move a damaged derived file aside (kept for a person to look at); None if it is gone."""
    data_dir, path = Path(data_dir), Path(path)
    try:
        rel = path.resolve().relative_to(data_dir.resolve())
    except ValueError:
        rel = Path(path.name)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    dest = data_dir / QUARANTINE / stamp / rel
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
    except FileNotFoundError:
        return None  # another thread moved it first
    except OSError as exc:
        log.warning("%s is damaged (%s) and could not be moved aside (%s)", path, reason, exc.strerror)
        return None
    log.warning("%s is unreadable or damaged (%s): moved to %s; it is recomputed", path, reason, dest)
    return dest


def damaged_catalog(path: Path, exc: BaseException) -> ReidError:
    """The one-line error for a catalogue SQLite cannot read."""
    return ReidError(f"the catalogue {path} is damaged ({exc}); restore the data dir from a backup "
                     f"(reid restore BACKUP --data-dir {path.parent} --force) - docs/security.md")


def sqlite_problem(path: Path) -> str | None:
    """SQLite's own integrity check of a catalogue file (read-only): None when it is sound."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    result = "; ".join(str(r[0]) for r in rows[:3])
    return None if result == "ok" else result


@dataclass
class FeatureCheck:
    checked: int = 0
    damaged: list[tuple[Path, str]] = field(default_factory=list)


def check_feature_files(data_dir: Path) -> FeatureCheck:
    """Load every keypoint cache under `<data_dir>/features`; list those that fail."""
    from reid.keypoints.extract import load_features

    out = FeatureCheck()
    for path in sorted((Path(data_dir) / "features").rglob("*.npz")):
        out.checked += 1
        try:
            load_features(path)
        except ImageError as exc:
            out.damaged.append((path, str(exc).removeprefix(f"{path}: ")))
    return out


def check_project_calibration(data_dir: Path, model_id: str) -> tuple[Path, str] | None:
    """(path, problem) when this data dir's own calibration for `model_id` cannot be used."""
    from reid.calibrate import Calibrator, project_calibration_path

    path = project_calibration_path(Path(data_dir), model_id)
    if not path.is_file():
        return None
    try:
        cal = Calibrator.load(path)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return path, str(exc)
    if cal.model_id and cal.model_id != model_id:
        return path, f"fitted for model {cal.model_id}, not {model_id}"
    return None


def report_and_repair(data_dir: Path, model_id: str, *, repair: bool) -> bool:
    """`reid check`'s look at derived files: print what is damaged; with `repair`, move it
    aside (caches are recomputed when next needed). True when nothing damaged remains."""
    features = check_feature_files(data_dir)
    print(f"keypoint caches: {features.checked} checked, {len(features.damaged)} damaged")
    for path, why in features.damaged:
        print(f"  damaged: {path} ({why})")
    calibration = check_project_calibration(data_dir, model_id)
    if calibration is not None:
        print(f"calibration {calibration[0]} cannot be used: {calibration[1]}")
    if not repair:
        return not features.damaged and calibration is None
    for path, why in features.damaged:
        quarantine(data_dir, path, why)
    if calibration is not None:
        quarantine(data_dir, calibration[0], calibration[1])
        print("the damaged calibration was moved aside: the model's shipped calibration is used until "
              "`reid calibrate` fits a new one")
    if features.damaged:
        print(f"moved {len(features.damaged)} damaged keypoint caches to {Path(data_dir) / QUARANTINE}; they are "
              "recomputed from the stored images when next needed")
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(folder: Path, prefix: str) -> int:
    """Remove `<prefix><pid>-*` files and folders in `folder` whose process is gone (a run
    killed before it could clean up); returns how many. A live run's own are left alone."""
    import shutil

    removed = 0
    try:
        entries = list(Path(folder).glob(f"{prefix}*-*"))
    except OSError:
        return 0
    for entry in entries:
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        try:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            continue
    if removed:
        log.info("removed %d temp files left in %s by runs that were killed", removed, folder)
    return removed
