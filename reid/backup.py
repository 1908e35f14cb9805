"""`reid backup DEST` and `reid restore SRC`: a data directory copied consistently, and back.

The catalogue is copied with SQLite's online backup API: a consistent snapshot even while
the service writes (WAL mode). The stored images are content-addressed and never change or
disappear, so copying them after the snapshot gives every row its file. Calibrations, models
kept in the data dir, the search indexes and keypoint caches are copied too (the last two
are only caches: checked on load and rebuilt if they disagree). A manifest lists what was
copied; restore checks every image against its SHA-256 name before it replaces anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reid.catalog import now_iso
from reid.damage import QUARANTINE, sqlite_problem
from reid.errors import NotFoundError, ReidError

CATALOG = "catalog.sqlite"
MANIFEST = "backup.json"
#: Folders of a data dir a backup carries besides the catalogue (anything else is left out).
FOLDERS = ("images", "calibration", "models", "index", "features")


@dataclass(frozen=True)
class CopySummary:
    source: Path
    dest: Path
    files: int
    bytes: int


def _copy_tree(src: Path, dest: Path) -> tuple[int, int]:
    files = size = 0
    for folder in FOLDERS:
        root = src / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.endswith(".tmp") or ".tmp" in path.suffixes:
                continue  # a write in progress: its finished file is what counts
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            files += 1
            size += target.stat().st_size
    return files, size


def backup(data_dir: Path, dest: Path) -> CopySummary:
    """Copy `data_dir` to `dest` (a new or empty folder); safe while the service runs."""
    data_dir, dest = Path(data_dir), Path(dest)
    source_db = data_dir / CATALOG
    if not source_db.is_file():
        raise NotFoundError(f"no catalogue in {data_dir} (set --data-dir or REID_DATA_DIR)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ReidError(f"{dest} exists and is not an empty folder; choose a new one")
    if dest.resolve().is_relative_to(data_dir.resolve()):
        raise ReidError(f"{dest} is inside the data dir {data_dir}; back up to another place")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(f"file:{source_db}?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(dest / CATALOG)) as dst:
            src.backup(dst)  # one consistent snapshot, pages copied while writers go on
            counts = {t: dst.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("individuals", "images")}
            dst.execute("DELETE FROM web_sessions")  # browser sign-ins are not worth restoring
            dst.commit()
    except sqlite3.DatabaseError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ReidError(f"the catalogue {source_db} cannot be backed up ({exc}); `reid check` tells more") from None
    files, size = _copy_tree(data_dir, dest)
    manifest = {"created": now_iso(), "source": str(data_dir.resolve()), "counts": counts, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return CopySummary(data_dir, dest, files, size + (dest / CATALOG).stat().st_size)


def _verify_images(src: Path) -> None:
    with closing(sqlite3.connect(f"file:{src / CATALOG}?mode=ro", uri=True)) as con:
        rows = con.execute("SELECT sha256, stored_path FROM images").fetchall()
    for sha, rel in rows:
        path = src / rel
        if not path.is_file():
            raise ReidError(f"backup {src} lacks the image file {rel}; nothing was restored")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            raise ReidError(f"backup {src}: the image file {rel} is damaged (its SHA-256 differs); nothing was restored")


def restore(src: Path, data_dir: Path, *, force: bool = False) -> CopySummary:
    """Make `data_dir` a copy of the backup `src`; an existing catalogue only with `force`
    (then the old data dir is kept beside it as <dir>.before-restore-<time>)."""
    src, data_dir = Path(src), Path(data_dir)
    if not (src / CATALOG).is_file() or not (src / MANIFEST).is_file():
        raise NotFoundError(f"{src} is not a `reid backup` folder (no {CATALOG} and {MANIFEST})")
    problem = sqlite_problem(src / CATALOG)
    if problem is not None:
        raise ReidError(f"the backup's catalogue {src / CATALOG} is damaged ({problem}); nothing was restored")
    _verify_images(src)
    occupied = data_dir.exists() and any(data_dir.iterdir())
    if occupied and (data_dir / CATALOG).is_file() and not force:
        raise ReidError(f"{data_dir} already holds a catalogue; add --force to replace it (it is kept aside)")
    if occupied and not (data_dir / CATALOG).is_file() and not force:
        raise ReidError(f"{data_dir} is not empty; restore into a new folder or add --force")
    staging = data_dir.with_name(data_dir.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(src / CATALOG, staging / CATALOG)
    files, size = _copy_tree(src, staging)
    (staging / QUARANTINE).mkdir(exist_ok=True)
    if data_dir.exists():
        aside = data_dir.with_name(f"{data_dir.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        os.replace(data_dir, aside)
    os.replace(staging, data_dir)
    return CopySummary(src, data_dir, files, size)
