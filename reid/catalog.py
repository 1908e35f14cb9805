"""SQLite catalogue: individuals, their images, embeddings per model, and an audit trail.

WAL mode so the web service can read while a batch writes. Every write is one
transaction; image files are stored content-addressed (images/ab/<sha256>.<ext>) and
written atomically before the row that points at them. Nothing is deleted without
an audit row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reid.damage import damaged_catalog
from reid.errors import BusyError, GoneError, NotFoundError, ReidError
from reid.fileio import atomic_write_bytes
from reid.names import validate_name

SCHEMA_VERSION = 1
CATALOG_FILE = "catalog.sqlite"  # in the data dir
BUSY_TIMEOUT_S = 30  # how long a connection waits for another process's write lock
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS individuals(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    sex TEXT,
    notes TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images(
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    box TEXT NOT NULL DEFAULT '',          -- 'x,y,w,h' of the animal, '' = whole image
    individual_id INTEGER REFERENCES individuals(id),
    viewpoint TEXT NOT NULL DEFAULT 'unknown',
    sighting TEXT,
    station TEXT,
    camera TEXT,                           -- camera id within the station (paired cameras)
    timestamp TEXT,
    lat REAL,
    lon REAL,
    source_path TEXT,
    stored_path TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE(sha256, box)
);
CREATE INDEX IF NOT EXISTS images_individual ON images(individual_id);
CREATE TABLE IF NOT EXISTS embeddings(
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY(image_id, model_id)
);
CREATE TABLE IF NOT EXISTS models(
    model_id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    path TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    metrics TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys(    -- reid.keys: only a hash of each key is kept
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,                    -- the actor named in the audit trail
    role TEXT NOT NULL,                    -- viewer | reviewer | admin
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS web_sessions(  -- signed-in browsers: hash of the cookie, the key behind it
    id_sha256 TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit(
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL DEFAULT 'system',
    action TEXT NOT NULL,
    individual_id INTEGER,
    image_id INTEGER,
    detail TEXT
);
-- review queue (reid/review.py): one item per query photo (sha256 + box), its machine ranking
CREATE TABLE IF NOT EXISTS review_items(
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    box TEXT NOT NULL DEFAULT '',
    stored_path TEXT NOT NULL,
    file_name TEXT NOT NULL,
    viewpoint TEXT NOT NULL DEFAULT 'unknown',
    sighting TEXT,
    station TEXT,
    camera TEXT,
    timestamp TEXT,
    lat REAL,
    lon REAL,
    model_id TEXT NOT NULL,
    calibration TEXT,
    verdict TEXT NOT NULL,                 -- the machine's: match / new / review
    candidates TEXT NOT NULL,              -- JSON list, best first
    status TEXT NOT NULL,                  -- pending / auto / deciding / decided / archived
    action TEXT,                           -- the standing decision (confirm, new, not_identifiable)
    individual_id INTEGER,
    image_id INTEGER,                      -- the catalogue image a confirmation enrolled
    skips INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,    -- bumped by every change: concurrent deciders conflict
    source TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    UNIQUE(sha256, box)
);
CREATE INDEX IF NOT EXISTS review_items_status ON review_items(status);
CREATE TABLE IF NOT EXISTS review_decisions(
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES review_items(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    individual_id INTEGER,
    viewpoint TEXT,
    proposed_verdict TEXT,                 -- what the machine had proposed
    proposed_individual_id INTEGER,
    proposed_probability REAL,
    image_id INTEGER,
    image_created INTEGER NOT NULL DEFAULT 0,
    individual_created INTEGER NOT NULL DEFAULT 0,
    previous_status TEXT NOT NULL,
    undone_at TEXT,
    undone_by TEXT
);
CREATE INDEX IF NOT EXISTS review_decisions_item ON review_decisions(item_id);
-- a review item of several photos (a season's putative new individual, reid.review.record_group)
CREATE TABLE IF NOT EXISTS review_item_photos(
    item_id INTEGER NOT NULL REFERENCES review_items(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    box TEXT NOT NULL DEFAULT '',
    stored_path TEXT NOT NULL,
    file_name TEXT NOT NULL,
    viewpoint TEXT NOT NULL DEFAULT 'unknown',
    sighting TEXT,
    station TEXT,
    camera TEXT,
    timestamp TEXT,
    lat REAL,
    lon REAL,
    PRIMARY KEY(item_id, position)
);
-- the further catalogue images one decision on such an item enrolled (undo removes them too)
CREATE TABLE IF NOT EXISTS review_decision_images(
    decision_id INTEGER NOT NULL REFERENCES review_decisions(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL,
    created INTEGER NOT NULL
);
-- catalogue curation (reid/curation.py): what each change did, so that undo restores it exactly
CREATE TABLE IF NOT EXISTS curation(
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,                  -- merge / move / update / best_photo
    individual_id INTEGER,
    target_id INTEGER,
    image_id INTEGER,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    undone_at TEXT,
    undone_by TEXT
);
CREATE TABLE IF NOT EXISTS best_photos(
    individual_id INTEGER NOT NULL,
    viewpoint TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    PRIMARY KEY(individual_id, viewpoint)
);
-- background jobs of the service (service/job_store.py): their state outlives a restart
CREATE TABLE IF NOT EXISTS jobs(
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,                  -- running / done / failed / interrupted
    phase TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,                 -- Unix times
    phase_started REAL NOT NULL,
    finished REAL,
    heartbeat REAL NOT NULL,               -- last sign of life of the process running it
    owner_pid INTEGER NOT NULL,
    owner_token TEXT NOT NULL,             -- one per server process: a reused pid is another process
    actor TEXT,
    result TEXT,                           -- JSON
    error TEXT
);
INSERT OR IGNORE INTO meta VALUES('generation', '0');
""" + "".join(
    # The catalogue's generation: bumped in the same transaction as every change to what a
    # pipeline indexes, by whichever process makes it, so a long-lived Pipeline (the service)
    # notices with one cheap read per identify (Catalog.generation, Pipeline.sync).
    f"CREATE TRIGGER IF NOT EXISTS generation_{table}_{event.lower()} AFTER {event} ON {table} BEGIN "
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'; END;\n"
    for table in ("individuals", "images", "embeddings") for event in ("INSERT", "UPDATE", "DELETE")
)

VIEWPOINTS = ("left", "right", "front", "back", "unknown")


#: Columns added after a catalogue may already exist: (table, column, declaration).
# images.crop: 1 when the photo was enrolled as a crop of the animal (its keypoints all kept;
# reid.keypoints.crops), 0 or NULL (enrolled before crops were detected) otherwise
_ADDED_COLUMNS = (("images", "camera", "TEXT"), ("images", "crop", "INTEGER"))


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Bring an older catalogue's tables up to date (SQLite adds nullable columns in place)."""
    for table, column, decl in _ADDED_COLUMNS:
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "database is busy": another connection holds the lock."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or any(word in str(exc) for word in ("database is locked", "database is busy", "database table is locked")))


def busy_catalog(data_dir: str | Path | None) -> BusyError:
    """The error for a lock held past BUSY_TIMEOUT_S: never "damaged", whose advice (restore a
    backup) would lose what was written since."""
    where = f" {Path(data_dir) / CATALOG_FILE}" if data_dir else ""
    return BusyError(f"the catalogue{where} is busy: another process held its write lock for over "
                     f"{BUSY_TIMEOUT_S} s; try again")


def _enable_wal(con: sqlite3.Connection) -> None:
    """PRAGMA journal_mode=WAL, retried: on a new file two processes race to switch it, and SQLite
    answers the loser "database is locked" at once, without waiting on the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _is_row_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def normalise_viewpoint(value: str | None) -> str:
    """EVAL.md allows free text; we keep the five known words and map the rest to 'unknown'."""
    v = (value or "").strip().lower()
    return v if v in VIEWPOINTS else "unknown"


def box_key(box: Sequence[float] | None) -> str:
    return "" if box is None else ",".join(f"{float(v):g}" for v in box)


def parse_box_key(key: str) -> tuple[float, float, float, float] | None:
    """The inverse of `box_key`: '' -> None (the whole image)."""
    if not key:
        return None
    x, y, w, h = (float(v) for v in key.split(","))
    return (x, y, w, h)


@dataclass(frozen=True)
class Individual:
    id: int
    name: str
    sex: str | None
    notes: str | None
    created_at: str
    image_count: int = 0


@dataclass(frozen=True)
class ImageRecord:
    id: int
    sha256: str
    box: str
    individual_id: int | None
    individual: str | None
    viewpoint: str
    sighting: str | None
    station: str | None
    timestamp: str | None
    lat: float | None
    lon: float | None
    camera: str | None
    source_path: str | None
    stored_path: str
    width: int | None
    height: int | None
    created_at: str
    crop: int | None = None  # 1: enrolled as a crop of the animal (reid.keypoints.crops)

    @property
    def box_tuple(self) -> tuple[float, float, float, float] | None:
        return parse_box_key(self.box)


@dataclass(frozen=True)
class GalleryEntry:
    """What the matcher needs about one gallery image, loaded in bulk."""

    image_id: int
    individual_id: int
    individual: str
    viewpoint: str



@contextmanager
def immediate_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on `con` (autocommit mode), rolled back on any exception:
    the write lock is taken up front, so two writers never deadlock upgrading a read."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")



def missing_individual(con: sqlite3.Connection, individual_id: int) -> NotFoundError:
    """The error for an individual id with no row: GoneError naming where it went when a merge
    (not undone) removed it, so a stale link or bookmark leads to the animal; else not found."""
    merged = con.execute("SELECT c.target_id, i.name FROM curation c LEFT JOIN individuals i ON i.id = c.target_id "
                         "WHERE c.action = 'merge' AND c.individual_id = ? AND c.undone_at IS NULL "
                         "ORDER BY c.id DESC LIMIT 1", (int(individual_id),)).fetchone()
    if merged is not None:
        into = f"individual {merged[0]}" + (f" ({merged[1]!r})" if merged[1] is not None else "")
        return GoneError(f"individual {individual_id} was merged into {into}")
    return NotFoundError(f"no individual with id {individual_id} in the catalogue")


class Catalog:
    """The catalogue in `<data_dir>/catalog.sqlite`; one connection per thread."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "images").mkdir(exist_ok=True)
        self.path = self.data_dir / CATALOG_FILE
        self._local = threading.local()
        try:
            con = self._connect()
            # IMMEDIATE: the schema has writes (INSERT OR IGNORE); a deferred BEGIN would read first
            # and then fail at once with "database is locked" when another process (a Ray worker,
            # a second CLI) committed in between, instead of waiting for the lock.
            # executescript commits on its own; the DDL is idempotent (IF NOT EXISTS).
            con.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            with self.transaction() as con:
                _add_missing_columns(con)
                con.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:  # not a database, malformed, truncated; or locked too long
            self.close()
            if is_busy(exc):  # a lock held past the timeout is not damage: restoring would lose data
                raise busy_catalog(self.data_dir) from None
            raise damaged_catalog(self.path, exc) from None

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            _enable_wal(con)
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with immediate_transaction(self._connect()) as con:
            yield con

    def generation(self) -> int:
        """A number that grows with every committed change to individuals, images or embeddings
        (SQLite triggers, same transaction): equal numbers mean the gallery is the same."""
        row = self._connect().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- individuals ---------------------------------------------------------------------------
    def _individual(self, row: sqlite3.Row) -> Individual:
        return Individual(
            id=row["id"], name=row["name"], sex=row["sex"], notes=row["notes"],
            created_at=row["created_at"], image_count=row["image_count"],
        )

    _INDIVIDUAL_SQL = (
        "SELECT i.*, (SELECT COUNT(*) FROM images m WHERE m.individual_id = i.id) AS image_count "
        "FROM individuals i"
    )

    def list_individuals(self) -> list[Individual]:
        rows = self._connect().execute(self._INDIVIDUAL_SQL + " ORDER BY i.name").fetchall()
        return [self._individual(r) for r in rows]

    def individual_by_id(self, individual_id: int) -> Individual:
        if not _is_row_id(individual_id):  # SQLite integers are 64-bit: larger ones are no id at all
            raise NotFoundError(f"no individual with id {individual_id} in the catalogue")
        con = self._connect()
        row = con.execute(self._INDIVIDUAL_SQL + " WHERE i.id = ?", (int(individual_id),)).fetchone()
        if row is None:
            raise missing_individual(con, individual_id)
        return self._individual(row)

    def individual_by_name(self, name: str) -> Individual:
        """By exact name: a name made of digits is a name, never an id."""
        row = self._connect().execute(self._INDIVIDUAL_SQL + " WHERE i.name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no individual named {name!r} in the catalogue")
        return self._individual(row)

    def get_individual(self, ref: int | str) -> Individual:
        """An int is an id, a str is a name: never guessed from the text (a name may be "7")."""
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise TypeError(f"an individual is looked up by int id or str name, not {type(ref).__name__}")
        return self.individual_by_id(ref) if isinstance(ref, int) else self.individual_by_name(ref)

    def individuals_missing_flank(self, flank: str) -> list[str]:
        """Names of the individuals with enrolled photos, none of them of `flank` (nor of an
        unknown side, which is compared with both): most recently enrolled first."""
        rows = self._connect().execute(
            "SELECT i.name FROM individuals i JOIN images m ON m.individual_id = i.id GROUP BY i.id"
            " HAVING SUM(m.viewpoint IN (?, 'unknown')) = 0 ORDER BY MAX(m.id) DESC", (flank,))
        return [r[0] for r in rows]

    def create_individual(self, name: str, *, sex: str | None = None, notes: str | None = None,
                          actor: str = "system", exist_ok: bool = False) -> Individual:
        name = validate_name(name)
        with self.transaction() as con:
            row = con.execute("SELECT id FROM individuals WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if not exist_ok:
                    raise ReidError(f"individual {name!r} already exists (id {row['id']})")
            else:
                # Never reuse the id of a merged-away individual: undoing the merge restores it.
                high = con.execute("SELECT value FROM meta WHERE key = 'individual_id_high_water'").fetchone()
                top = con.execute("SELECT COALESCE(MAX(id), 0) FROM individuals").fetchone()[0]
                cur = con.execute(
                    "INSERT INTO individuals(id, name, sex, notes, created_at) VALUES(?,?,?,?,?)",
                    (max(int(top), int(high[0]) if high else 0) + 1, name, sex, notes, now_iso()),
                )
                self._audit(con, "create_individual", actor=actor, individual_id=cur.lastrowid, detail={"name": name})
        return self.individual_by_name(name)  # exact: a name made of digits is not an id

    # -- images ----------------------------------------------------------------------------------
    def store_file(self, data: bytes, suffix: str) -> tuple[str, str]:
        """Content-addressed copy; returns (sha256, path relative to the data dir)."""
        sha = hashlib.sha256(data).hexdigest()
        suffix = suffix.lower() if suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"} else ".img"
        rel = Path("images") / sha[:2] / f"{sha}{suffix}"
        dest = self.data_dir / rel
        if not dest.exists():
            atomic_write_bytes(dest, data)  # durable before the row that points at it is written
        return sha, str(rel)

    def find_image(self, sha256: str, box: Sequence[float] | None = None) -> ImageRecord | None:
        row = self._connect().execute(self._IMAGE_SQL + " WHERE m.sha256 = ? AND m.box = ?", (sha256, box_key(box))).fetchone()
        return None if row is None else self._image(row)

    _IMAGE_SQL = "SELECT m.*, i.name AS individual FROM images m LEFT JOIN individuals i ON i.id = m.individual_id"

    def _image(self, row: sqlite3.Row) -> ImageRecord:
        return ImageRecord(**{k: row[k] for k in ImageRecord.__dataclass_fields__})

    def get_image(self, image_id: int) -> ImageRecord:
        if not _is_row_id(image_id):
            raise NotFoundError(f"no image {image_id} in the catalogue")
        row = self._connect().execute(self._IMAGE_SQL + " WHERE m.id = ?", (image_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no image {image_id} in the catalogue")
        return self._image(row)

    def images_of(self, individual_id: int) -> list[ImageRecord]:
        rows = self._connect().execute(self._IMAGE_SQL + " WHERE m.individual_id = ? ORDER BY m.id", (individual_id,))
        return [self._image(r) for r in rows]

    def add_image(self, *, individual_id: int, sha256: str, stored_path: str, box: Sequence[float] | None,
                  viewpoint: str | None, sighting: str | None = None, station: str | None = None,
                  timestamp: str | None = None, lat: float | None = None, lon: float | None = None,
                  camera: str | None = None, source_path: str | None = None, width: int | None = None, height: int | None = None,
                  model_id: str, vector: np.ndarray, actor: str = "system",
                  crop: bool = False) -> tuple[ImageRecord, bool]:
        """Enroll one image with its embedding, in one transaction (`crop`: the photo is a crop of
        the animal, reid.keypoints.crops; kept as first enrolled).

        Returns (record, created). The same file with the same box is never stored twice;
        enrolling it again for another individual is refused rather than silently moved.
        """
        key = box_key(box)
        with self.transaction() as con:
            row = con.execute("SELECT id, individual_id FROM images WHERE sha256 = ? AND box = ?", (sha256, key)).fetchone()
            if row is not None:
                if row["individual_id"] not in (None, individual_id):
                    other = con.execute("SELECT name FROM individuals WHERE id = ?", (row["individual_id"],)).fetchone()
                    raise ReidError(f"this image is already enrolled as {other['name']!r} (image {row['id']})")
                image_id, created = int(row["id"]), False
            else:
                cur = con.execute(
                    "INSERT INTO images(sha256, box, individual_id, viewpoint, sighting, station, timestamp, lat, lon,"
                    " camera, source_path, stored_path, width, height, created_at, crop)"
                    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (sha256, key, individual_id, normalise_viewpoint(viewpoint), sighting, station, timestamp,
                     lat, lon, camera, source_path, stored_path, width, height, now_iso(), int(bool(crop))),
                )
                image_id, created = int(cur.lastrowid), True
                self._audit(con, "enroll_image", actor=actor, individual_id=individual_id, image_id=image_id,
                            detail={"sha256": sha256, "source_path": source_path})
            con.execute(
                "INSERT OR REPLACE INTO embeddings(image_id, model_id, vector) VALUES(?,?,?)",
                (image_id, model_id, np.asarray(vector, np.float32).tobytes()),
            )
        return self.get_image(image_id), created

    # -- embeddings --------------------------------------------------------------------------------
    def gallery(self, model_id: str) -> tuple[list[GalleryEntry], np.ndarray]:
        """All enrolled images with an embedding for `model_id`, and their vectors (N, dim)."""
        rows = self._connect().execute(
            "SELECT m.id, m.individual_id, i.name, m.viewpoint, e.vector FROM embeddings e"
            " JOIN images m ON m.id = e.image_id JOIN individuals i ON i.id = m.individual_id"
            " WHERE e.model_id = ? ORDER BY m.id", (model_id,),
        ).fetchall()
        entries = [GalleryEntry(r[0], r[1], r[2], r[3]) for r in rows]
        vectors = np.stack([np.frombuffer(r[4], np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return entries, vectors

    def gallery_entries(self, image_ids: Sequence[int]) -> dict[int, GalleryEntry]:
        if not image_ids:
            return {}
        out: dict[int, GalleryEntry] = {}
        ids = [int(i) for i in image_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._connect().execute(
                f"SELECT m.id, m.individual_id, i.name, m.viewpoint FROM images m JOIN individuals i"
                f" ON i.id = m.individual_id WHERE m.id IN ({','.join('?' * len(chunk))})", chunk,
            )
            out.update({r[0]: GalleryEntry(r[0], r[1], r[2], r[3]) for r in rows})
        return out

    def image_digest(self, image_ids: Sequence[int]) -> str:
        """sha256 over these images' identity in the catalogue (file hash, box, individual,
        viewpoint): it changes when any of them is not what it was, e.g. in a re-created catalogue."""
        h = hashlib.sha256()
        ids = sorted({int(i) for i in image_ids})
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = {r[0]: r for r in self._connect().execute(
                f"SELECT id, sha256, box, individual_id, viewpoint FROM images WHERE id IN ({','.join('?' * len(chunk))})",
                chunk)}
            for i in chunk:
                h.update((repr(tuple(rows[i])) if i in rows else f"({i}, missing)").encode() + b"\n")
        return h.hexdigest()

    def images_missing_embedding(self, model_id: str) -> list[ImageRecord]:
        rows = self._connect().execute(
            self._IMAGE_SQL + " WHERE m.individual_id IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM embeddings e WHERE e.image_id = m.id AND e.model_id = ?) ORDER BY m.id", (model_id,),
        )
        return [self._image(r) for r in rows]

    def set_embeddings(self, model_id: str, image_ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO embeddings(image_id, model_id, vector) VALUES(?,?,?)",
                [(int(i), model_id, np.asarray(v, np.float32).tobytes()) for i, v in zip(image_ids, vectors, strict=True)],
            )

    def gallery_owners(self, model_id: str) -> dict[int, tuple[int, str]]:
        """image id -> (individual id, viewpoint) of every gallery image with a `model_id` vector."""
        rows = self._connect().execute(
            "SELECT m.id, m.individual_id, m.viewpoint FROM embeddings e JOIN images m ON m.id = e.image_id"
            " WHERE e.model_id = ? AND m.individual_id IS NOT NULL", (model_id,))
        return {r[0]: (r[1], r[2]) for r in rows}

    def embeddings(self, model_id: str, image_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """(ids found, their vectors) for these images under `model_id`, in the order asked."""
        found: dict[int, np.ndarray] = {}
        ids = [int(i) for i in image_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._connect().execute(
                f"SELECT image_id, vector FROM embeddings WHERE model_id = ? AND image_id IN"
                f" ({','.join('?' * len(chunk))})", (model_id, *chunk))
            found.update({r[0]: np.frombuffer(r[1], np.float32) for r in rows})
        keep = [i for i in ids if i in found]
        return keep, (np.stack([found[i] for i in keep]) if keep else np.zeros((0, 0), np.float32))

    def embedding_ids(self, model_id: str) -> np.ndarray:
        rows = self._connect().execute(
            "SELECT e.image_id FROM embeddings e JOIN images m ON m.id = e.image_id"
            " WHERE e.model_id = ? AND m.individual_id IS NOT NULL ORDER BY e.image_id", (model_id,),
        ).fetchall()
        return np.asarray([r[0] for r in rows], np.int64)

    # -- models and audit ----------------------------------------------------------------------------
    def register_model(self, model_id: str, version: str, path: str | None, metrics: dict | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT OR IGNORE INTO models(model_id, version, path, metrics, created_at) VALUES(?,?,?,?,?)",
                (model_id, version, path, json.dumps(metrics or {}), now_iso()),
            )

    @staticmethod
    def _audit(con: sqlite3.Connection, action: str, *, actor: str = "system", individual_id: int | None = None,
               image_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        con.execute(
            "INSERT INTO audit(at, actor, action, individual_id, image_id, detail) VALUES(?,?,?,?,?,?)",
            (now_iso(), actor, action, individual_id, image_id, json.dumps(detail or {}, default=str)),
        )

    def audit(self, action: str, **kw: Any) -> None:
        with self.transaction() as con:
            self._audit(con, action, **kw)

    def audit_rows(self, action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM audit", []
        if action:
            sql, args = sql + " WHERE action = ?", [action]
        rows = self._connect().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"] or "{}")} for r in rows]

    def counts(self) -> dict[str, int]:
        con = self._connect()
        return {
            "individuals": con.execute("SELECT COUNT(*) FROM individuals").fetchone()[0],
            "images": con.execute("SELECT COUNT(*) FROM images WHERE individual_id IS NOT NULL").fetchone()[0],
        }
