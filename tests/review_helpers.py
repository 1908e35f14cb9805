"""A private, writable copy of the session's enrolled catalogue for review tests."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path


def copy_catalog(enrolled_dir: Path, pipeline, dest: Path) -> Path:
    """Copy the data dir after flushing the session pipeline's writes (WAL checkpointed), with
    an empty review queue: identifications by earlier tests of the session queued items there."""
    pipeline.flush()
    con = sqlite3.connect(enrolled_dir / "catalog.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    shutil.copytree(enrolled_dir, dest)
    con = sqlite3.connect(dest / "catalog.sqlite")
    with con:
        for table in ("review_decisions", "review_items", "curation", "best_photos"):
            con.execute(f"DELETE FROM {table}")
    con.close()
    return dest
