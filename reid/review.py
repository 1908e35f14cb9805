"""The review queue: a person decides what the machine could not, and the catalogue learns at once.

Every identification that is not a confident `match` becomes a pending item (the query photo
stored content-addressed like catalogue images, its metadata, the model and calibration used,
and the ranked candidates with the gallery image behind each one's evidence). A `match` is
stored as an auto-accepted item (`auto`) that a person can still open and overturn; only a
person's decision enrolls a photo. The same photo (sha256 + box) is one item however often it
is identified.

An item may hold several photos (`record_group`): a season's putative new individual, "these 9
photos look like one new leopard", decided once; confirm and new then enroll every photo.

Decisions: confirm (this is individual X), new (a new, named individual; several items at
once), not_identifiable, skip. Each records who, when and what the machine had proposed, and
can be undone. Two people deciding one item at once: one wins, the other gets ConflictError
(the item is claimed with a version check inside one transaction before anything is enrolled).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reid.catalog import Catalog, box_key, normalise_viewpoint, now_iso, parse_box_key
from reid.errors import ConflictError, NotFoundError, ReidError

if TYPE_CHECKING:  # type hints only: listing the queue needs no model
    from reid.identify import Identification, Pipeline, QueryImage

ACTIONS = ("confirm", "new", "not_identifiable", "skip")
STATUSES = ("pending", "auto", "decided", "archived")
#: A claim older than this is from a process that died mid-decision: it may be taken over.
STALE_CLAIM = timedelta(minutes=10)


@dataclass(frozen=True)
class ReviewCandidate:
    rank: int
    individual_id: int
    identity: str  # the individual's name now (merged individuals show the one they joined)
    probability: float
    image_id: int  # the gallery image that gave this candidate's evidence
    viewpoint: str
    inliers: int
    cosine: float


@dataclass(frozen=True)
class ReviewPhoto:
    """One photo of a multi-photo item (`record_group`)."""

    position: int
    sha256: str
    box: str
    stored_path: str
    file_name: str
    viewpoint: str
    sighting: str | None
    station: str | None
    camera: str | None
    timestamp: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class GroupPhoto:
    """A photo to put into a multi-photo item: the original file (`path`, with `box`) or, for
    a video frame, the crop itself (`rgb`)."""

    name: str
    path: Path | None = None
    rgb: Any = None
    box: tuple[float, float, float, float] | None = None
    viewpoint: str = "unknown"
    sighting: str | None = None
    station: str | None = None
    camera: str | None = None
    timestamp: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class ReviewItem:
    id: int
    status: str
    file_name: str
    sha256: str
    box: str
    stored_path: str
    viewpoint: str
    sighting: str | None
    station: str | None
    camera: str | None
    timestamp: str | None
    lat: float | None
    lon: float | None
    model_id: str
    calibration: str | None
    verdict: str
    candidates: list[ReviewCandidate]
    action: str | None
    individual_id: int | None
    individual: str | None
    image_id: int | None
    skips: int
    version: int
    source: str | None
    created_at: str
    updated_at: str
    decided_at: str | None
    decided_by: str | None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    photos: list[ReviewPhoto] = field(default_factory=list)  # a multi-photo item's photos (else empty)

    @property
    def box_tuple(self) -> tuple[float, float, float, float] | None:
        return parse_box_key(self.box)


# -- reading -------------------------------------------------------------------------------------------
def merged_into(catalog: Catalog) -> dict[int, int]:
    """individual id -> the individual it was merged into (standing merges only)."""
    rows = catalog._connect().execute(
        "SELECT individual_id, target_id FROM curation WHERE action = 'merge' AND undone_at IS NULL ORDER BY id")
    return {int(r[0]): int(r[1]) for r in rows}


def _resolver(catalog: Catalog):
    names = {i.id: i.name for i in catalog.list_individuals()}
    merges = merged_into(catalog)

    def current(individual_id: int) -> tuple[int, str | None]:
        seen = set()
        while individual_id not in names and individual_id in merges and individual_id not in seen:
            seen.add(individual_id)
            individual_id = merges[individual_id]
        return individual_id, names.get(individual_id)

    return current


def _photos(con: sqlite3.Connection, item_id: int) -> list[ReviewPhoto]:
    rows = con.execute("SELECT * FROM review_item_photos WHERE item_id = ? ORDER BY position", (int(item_id),))
    return [ReviewPhoto(**{k: r[k] for k in ReviewPhoto.__dataclass_fields__}) for r in rows]


def _item(row: sqlite3.Row, current, decisions: list[dict[str, Any]] | None = None,
          photos: list[ReviewPhoto] | None = None) -> ReviewItem:
    cands = []
    for c in json.loads(row["candidates"] or "[]"):
        ind, name = current(int(c["individual_id"]))
        cands.append(ReviewCandidate(rank=c["rank"], individual_id=ind, identity=name or c["identity"],
                                     probability=c["probability"], image_id=c["image_id"],
                                     viewpoint=c["viewpoint"], inliers=c.get("inliers", 0),
                                     cosine=c.get("cosine", 0.0)))
    ind_id, ind_name = (current(row["individual_id"]) if row["individual_id"] is not None else (None, None))
    return ReviewItem(
        id=row["id"], status="pending" if row["status"] == "deciding" else row["status"],
        file_name=row["file_name"], sha256=row["sha256"], box=row["box"], stored_path=row["stored_path"],
        viewpoint=row["viewpoint"], sighting=row["sighting"], station=row["station"], camera=row["camera"],
        timestamp=row["timestamp"], lat=row["lat"], lon=row["lon"], model_id=row["model_id"],
        calibration=row["calibration"], verdict=row["verdict"], candidates=cands, action=row["action"],
        individual_id=ind_id, individual=ind_name, image_id=row["image_id"], skips=row["skips"],
        version=row["version"], source=row["source"], created_at=row["created_at"], updated_at=row["updated_at"],
        decided_at=row["decided_at"], decided_by=row["decided_by"], decisions=decisions or [],
        photos=photos or [],
    )


def get_item(catalog: Catalog, item_id: int) -> ReviewItem:
    con = catalog._connect()
    row = con.execute("SELECT * FROM review_items WHERE id = ?", (int(item_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"no review item {item_id}")
    decisions = [dict(r) for r in con.execute(
        "SELECT * FROM review_decisions WHERE item_id = ? ORDER BY id", (int(item_id),))]
    return _item(row, _resolver(catalog), decisions, _photos(con, int(item_id)))


def _filters(status: str, station: str | None, viewpoint: str | None, date_from: str | None,
             date_to: str | None) -> tuple[str, list[Any]]:
    where, args = [], []
    if status == "pending":
        where.append("status IN ('pending', 'deciding')")
    elif status in ("auto", "decided", "archived"):
        where.append("status = ?")
        args.append(status)
    elif status != "all":
        raise ReidError(f"status must be one of pending, auto, decided, archived, all; not {status!r}")
    if station:
        where.append("station = ?")
        args.append(station)
    if viewpoint:
        where.append("viewpoint = ?")
        args.append(normalise_viewpoint(viewpoint))
    if date_from:
        where.append("substr(timestamp, 1, 10) >= ?")
        args.append(date_from[:10])
    if date_to:
        where.append("substr(timestamp, 1, 10) <= ?")
        args.append(date_to[:10])
    return (" WHERE " + " AND ".join(where)) if where else "", args


def list_items(catalog: Catalog, *, status: str = "pending", station: str | None = None,
               viewpoint: str | None = None, date_from: str | None = None, date_to: str | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[ReviewItem], int]:
    """Items in review order (skipped ones last, then oldest first) and how many match the filters."""
    where, args = _filters(status, station, viewpoint, date_from, date_to)
    con = catalog._connect()
    total = con.execute("SELECT COUNT(*) FROM review_items" + where, args).fetchone()[0]
    rows = con.execute(f"SELECT * FROM review_items{where} ORDER BY skips, id LIMIT ? OFFSET ?",
                       (*args, int(limit), int(offset))).fetchall()
    current = _resolver(catalog)
    return [_item(r, current, photos=_photos(con, r["id"])) for r in rows], int(total)


def stations(catalog: Catalog) -> list[str]:
    rows = catalog._connect().execute("SELECT DISTINCT station FROM review_items WHERE station IS NOT NULL"
                                      " ORDER BY station")
    return [r[0] for r in rows]


def counts(catalog: Catalog) -> dict[str, int]:
    rows = catalog._connect().execute("SELECT status, COUNT(*) FROM review_items GROUP BY status")
    out = dict.fromkeys(STATUSES, 0)
    for status, n in rows:
        out["pending" if status == "deciding" else status] += n
    return out


def confirmations_since(catalog: Catalog, since: str | None) -> int:
    """Standing confirmations (confirm and new) decided after `since` (ISO time; None: all):
    what a retrained model would learn from that the current one has not seen."""
    sql = ("SELECT COUNT(*) FROM review_decisions WHERE action IN ('confirm', 'new') AND undone_at IS NULL")
    args: list[Any] = []
    if since:
        sql += " AND at > ?"
        args.append(since)
    return int(catalog._connect().execute(sql, args).fetchone()[0])


# -- recording identifications -------------------------------------------------------------------
def _photo_bytes(query: QueryImage, data: bytes | None, path: str | Path | None) -> tuple[bytes, str, tuple | None]:
    """The bytes to keep for a query: the original file when known (with the query's box),
    else the crop itself as PNG (a video frame; no box then)."""
    from reid import imageio

    if data is None and query.data is not None:
        data = query.data
    if data is None and path is not None:
        data = imageio.read_bytes(path)
    if data is not None:
        return data, Path(query.name).suffix or ".jpg", query.box
    return imageio.encode_png(query.rgb), ".png", None


def record_identification(pipeline: Pipeline, query: QueryImage, result: Identification, *,
                          data: bytes | None = None, path: str | Path | None = None, source: str = "api",
                          camera: str | None = None) -> ReviewItem | None:
    """Queue one identification: pending unless the verdict is `match` (then auto-accepted).

    The one function every entry point calls (HTTP identify and sighting, `reid identify`,
    `reid batch`, season runs). `data` or `path`: the original file (else the crop is kept).
    The same photo and box again refreshes a pending item's
    ranking and leaves a decided one alone. Errors are not queued (None).
    """
    if result.decision == "error":
        return None
    catalog = pipeline.catalog
    blob, suffix, box = _photo_bytes(query, data, path)
    sha, rel = catalog.store_file(blob, suffix)
    candidates = [{"rank": c.rank, "individual_id": c.individual_id, "identity": c.identity,
                   "probability": c.score, "image_id": c.image_id, "viewpoint": c.viewpoint,
                   "inliers": c.inliers, "cosine": c.cosine} for c in result.candidates]
    status = "auto" if result.decision == "match" else "pending"
    now = now_iso()
    with catalog.transaction() as con:
        row = con.execute("SELECT id, status FROM review_items WHERE sha256 = ? AND box = ?",
                          (sha, box_key(box))).fetchone()
        if row is None:
            cur = con.execute(
                "INSERT INTO review_items(sha256, box, stored_path, file_name, viewpoint, sighting, station, camera,"
                " timestamp, lat, lon, model_id, calibration, verdict, candidates, status, source, created_at,"
                " updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (sha, box_key(box), rel, query.name[:300] or "upload", query.viewpoint, query.sighting,
                 query.station, camera, query.timestamp, query.lat, query.lon, pipeline.model_id,
                 pipeline.calibration_source, result.decision, json.dumps(candidates), status, source, now, now))
            item_id = int(cur.lastrowid)
        else:
            item_id = int(row["id"])
            if row["status"] in ("pending", "auto"):  # not yet decided by a person: the newest ranking
                con.execute("UPDATE review_items SET candidates = ?, verdict = ?, status = ?, model_id = ?,"
                            " calibration = ?, updated_at = ?, version = version + 1 WHERE id = ?",
                            (json.dumps(candidates), result.decision, status, pipeline.model_id,
                             pipeline.calibration_source, now, item_id))
    return get_item(catalog, item_id)


def review_hook(pipeline: Pipeline, *, source: str = "batch") -> Callable[[Any], None]:
    """For `reid.batch.run_batch(on_outcome=...)`: queue each identified photo of a batch."""

    def hook(outcome: Any) -> None:  # reid.batch.Outcome
        query, item = outcome.query, outcome.item
        if query is None:
            return
        path = item.file if item is not None and not item.is_video else None
        camera = getattr(item.row, "camera", None) if item is not None and item.row is not None else None
        record_identification(pipeline, query, outcome.identification, path=path, source=source, camera=camera)

    return hook


def record_group(pipeline: Pipeline, photos: Sequence[GroupPhoto], *, label: str, source: str = "season",
                 model_id: str | None = None) -> ReviewItem | None:
    """Queue several photos of one putative new individual as ONE pending item (verdict `new`).

    The item is keyed by its first photo (sha256 + box), so queueing the same group again (a
    rerun of the season) refreshes it while pending and leaves it alone once decided. Deciding
    it `new` (with a name) or `confirm` enrolls every photo, each with its own flank; undo
    removes them all. `label` (e.g. "season U003") is the item's sighting."""
    if not photos:
        return None
    from reid import imageio

    catalog = pipeline.catalog
    stored = []
    for p in photos:
        if p.path is not None:
            blob, suffix, box = imageio.read_bytes(p.path), Path(p.name).suffix or ".jpg", p.box
        else:  # a video frame: the crop is what is kept
            blob, suffix, box = imageio.encode_png(p.rgb), ".png", None
        sha, rel = catalog.store_file(blob, suffix)
        stored.append((sha, box_key(box), rel, p))
    first_sha, first_box, first_rel, first = stored[0]
    now = now_iso()
    with catalog.transaction() as con:
        row = con.execute("SELECT id, status FROM review_items WHERE sha256 = ? AND box = ?",
                          (first_sha, first_box)).fetchone()
        if row is not None and row["status"] not in ("pending", "auto"):
            item_id = int(row["id"])  # decided (or being decided) by a person: left as it is
            stored = []
        elif row is None:
            cur = con.execute(
                "INSERT INTO review_items(sha256, box, stored_path, file_name, viewpoint, sighting, station, camera,"
                " timestamp, lat, lon, model_id, calibration, verdict, candidates, status, source, created_at,"
                " updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,'new','[]','pending',?,?,?)",
                (first_sha, first_box, first_rel, first.name[:300], normalise_viewpoint(first.viewpoint), label,
                 first.station, first.camera, first.timestamp, first.lat, first.lon, model_id or pipeline.model_id,
                 pipeline.calibration_source, source, now, now))
            item_id = int(cur.lastrowid)
        else:
            item_id = int(row["id"])
            con.execute("UPDATE review_items SET verdict = 'new', candidates = '[]', status = 'pending', sighting = ?,"
                        " source = ?, updated_at = ?, version = version + 1 WHERE id = ?", (label, source, now, item_id))
        if stored:
            con.execute("DELETE FROM review_item_photos WHERE item_id = ?", (item_id,))
            con.executemany(
                "INSERT INTO review_item_photos(item_id, position, sha256, box, stored_path, file_name, viewpoint,"
                " sighting, station, camera, timestamp, lat, lon) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(item_id, n, sha, box, rel, p.name[:300], normalise_viewpoint(p.viewpoint), p.sighting, p.station,
                  p.camera, p.timestamp, p.lat, p.lon) for n, (sha, box, rel, p) in enumerate(stored)])
    return get_item(catalog, item_id)


# -- deciding ------------------------------------------------------------------------------------------
def _claim(catalog: Catalog, item_id: int, version: int | None, *, allow: tuple[str, ...]) -> sqlite3.Row:
    """Mark the item as being decided, atomically: a second decider gets ConflictError."""
    with catalog.transaction() as con:
        row = con.execute("SELECT * FROM review_items WHERE id = ?", (int(item_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no review item {item_id}")
        stale = (row["status"] == "deciding"
                 and datetime.fromisoformat(row["updated_at"]) < datetime.now(UTC) - STALE_CLAIM)
        if row["status"] == "deciding" and not stale:
            raise ConflictError(f"review item {item_id} is being decided by someone else right now")
        if version is not None and row["version"] != version:
            raise ConflictError(f"review item {item_id} changed since you loaded it (version {row['version']}, "
                                f"not {version}); reload it")
        if row["status"] not in allow and not stale:
            who = f" by {row['decided_by']}" if row["decided_by"] else ""
            raise ConflictError(f"review item {item_id} is already {row['status']}{who}; undo that first")
        con.execute("UPDATE review_items SET status = 'deciding', version = version + 1, updated_at = ? WHERE id = ?",
                    (now_iso(), int(item_id)))
    return row


def _release(catalog: Catalog, row: sqlite3.Row) -> None:
    """Give a claimed item back unchanged (the decision failed)."""
    with catalog.transaction() as con:
        con.execute("UPDATE review_items SET status = ?, updated_at = ? WHERE id = ?",
                    (row["status"] if row["status"] != "deciding" else "pending", now_iso(), row["id"]))


def _proposed(row: sqlite3.Row) -> tuple[str, int | None, float | None]:
    cands = json.loads(row["candidates"] or "[]")
    top = cands[0] if cands else None
    return row["verdict"], (top["individual_id"] if top else None), (top["probability"] if top else None)


def _enroll_item(pipeline: Pipeline, row: sqlite3.Row, individual_id: int, viewpoint: str,
                 actor: str) -> list[tuple[int, bool]]:
    """The item's photo, or every photo of a multi-photo item (each with its own flank), into
    that individual. A photo already enrolled as another individual refuses the whole item
    before anything is enrolled."""
    photos = _photos(pipeline.catalog._connect(), row["id"])
    if not photos:
        return [_enroll(pipeline, row, individual_id, viewpoint, actor)]
    con = pipeline.catalog._connect()
    for p in photos:
        other = con.execute("SELECT m.id, i.name FROM images m JOIN individuals i ON i.id = m.individual_id"
                            " WHERE m.sha256 = ? AND m.box = ? AND m.individual_id != ?",
                            (p.sha256, p.box, individual_id)).fetchone()
        if other is not None:
            raise ConflictError(f"{p.file_name} is already enrolled as {other['name']!r} (image {other['id']})")
    return [_enroll(pipeline, {k: getattr(p, k) for k in ReviewPhoto.__dataclass_fields__}, individual_id,
                    p.viewpoint, actor) for p in photos]


def _enroll(pipeline: Pipeline, row: Any, individual_id: int, viewpoint: str, actor: str) -> tuple[int, bool]:
    """The item's photo into that individual (FAISS, keypoints, caches: seen by the next query)."""
    path = pipeline.catalog.data_dir / row["stored_path"]
    query = pipeline.load_query(path, name=row["file_name"], viewpoint=viewpoint, box=_box(row["box"]),
                                keep_bytes=True, sighting=row["sighting"], station=row["station"],
                                timestamp=row["timestamp"], lat=row["lat"], lon=row["lon"])
    try:
        ((record, created),) = pipeline.enroll("", [query], actor=actor, individual_id=individual_id)
    except NotFoundError:
        raise
    except ReidError as exc:  # e.g. the photo is already enrolled as another individual
        raise ConflictError(str(exc)) from None
    if row["camera"] and record.camera is None:
        with pipeline.catalog.transaction() as con:
            con.execute("UPDATE images SET camera = ? WHERE id = ?", (row["camera"], record.id))
    return record.id, created


def _box(text: str) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    x, y, w, h = (float(v) for v in text.split(","))
    return (x, y, w, h)


def decide(pipeline: Pipeline, item_id: int, action: str, *, individual_id: int | None = None,
           name: str | None = None, viewpoint: str | None = None, actor: str = "system",
           version: int | None = None) -> ReviewItem:
    """Record a person's decision on one item and apply it to the catalogue.

    confirm: `individual_id` or an exact `name` (a name made of digits is a name); the photo is
    enrolled into that individual at once. new: `name` of a new individual. not_identifiable,
    skip: nothing enrolled (a skipped item stays pending, after the others).
    """
    if action not in ACTIONS:
        raise ReidError(f"action must be one of {', '.join(ACTIONS)}; not {action!r}")
    if action == "new":
        return decide_new(pipeline, [item_id], name or "", actor=actor, version=version)[0]
    catalog = pipeline.catalog
    target = None
    if action == "confirm":
        if (individual_id is None) == (name is None):
            raise ReidError("confirm needs exactly one of individual_id or name")
        target = catalog.individual_by_id(individual_id) if individual_id is not None else catalog.individual_by_name(name)
    row = _claim(catalog, item_id, version, allow=("pending", "auto"))
    try:
        enrolled: list[tuple[int, bool]] = []
        vp = normalise_viewpoint(viewpoint) if viewpoint else row["viewpoint"]
        if target is not None:
            enrolled = _enroll_item(pipeline, row, target.id, vp, actor)
        _finish(catalog, row, action, actor, individual_id=target.id if target else None, viewpoint=vp,
                enrolled=enrolled, individual_created=False)
    except BaseException:
        _release(catalog, row)
        raise
    return get_item(catalog, item_id)


def decide_new(pipeline: Pipeline, item_ids: Sequence[int], name: str, *, actor: str = "system",
               version: int | None = None) -> list[ReviewItem]:
    """Several pending items are one new individual, named `name` (which must not exist yet)."""
    catalog = pipeline.catalog
    name = (name or "").strip()
    if not name:
        raise ReidError("a new individual needs a name")
    if not item_ids:
        raise ReidError("name at least one review item")
    try:
        catalog.individual_by_name(name)
    except NotFoundError:
        pass
    else:
        raise ConflictError(f"an individual named {name!r} already exists; confirm the item as that one instead")
    rows = []
    try:
        for item_id in dict.fromkeys(int(i) for i in item_ids):
            rows.append(_claim(catalog, item_id, version if len(item_ids) == 1 else None, allow=("pending", "auto")))
    except BaseException:
        for row in rows:
            _release(catalog, row)
        raise
    done: list[int] = []
    try:
        try:
            ind = catalog.create_individual(name, actor=actor)
        except ReidError as exc:
            raise ConflictError(str(exc)) from None
        for row in rows:
            enrolled = _enroll_item(pipeline, row, ind.id, row["viewpoint"], actor)
            _finish(catalog, row, "new", actor, individual_id=ind.id, viewpoint=row["viewpoint"],
                    enrolled=enrolled, individual_created=not done)
            done.append(row["id"])
    except BaseException:
        for row in rows:
            if row["id"] not in done:
                _release(catalog, row)
        raise
    return [get_item(catalog, i) for i in done]


def _finish(catalog: Catalog, row: sqlite3.Row, action: str, actor: str, *, individual_id: int | None,
            viewpoint: str, enrolled: Sequence[tuple[int, bool]], individual_created: bool) -> None:
    verdict, proposed_id, proposed_p = _proposed(row)
    image_id, image_created = enrolled[0] if enrolled else (None, False)
    now = now_iso()
    with catalog.transaction() as con:
        cur = con.execute(
            "INSERT INTO review_decisions(item_id, at, actor, action, individual_id, viewpoint, proposed_verdict,"
            " proposed_individual_id, proposed_probability, image_id, image_created, individual_created,"
            " previous_status) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row["id"], now, actor, action, individual_id, viewpoint, verdict, proposed_id, proposed_p, image_id,
             int(image_created), int(individual_created), row["status"]))
        con.executemany("INSERT INTO review_decision_images(decision_id, image_id, created) VALUES(?,?,?)",
                        [(cur.lastrowid, i, int(c)) for i, c in enrolled[1:]])
        if action == "skip":
            con.execute("UPDATE review_items SET status = ?, skips = skips + 1, updated_at = ? WHERE id = ?",
                        (row["status"], now, row["id"]))
        else:
            con.execute("UPDATE review_items SET status = 'decided', action = ?, individual_id = ?, image_id = ?,"
                        " decided_at = ?, decided_by = ?, updated_at = ? WHERE id = ?",
                        (action, individual_id, image_id, now, actor, now, row["id"]))
        catalog._audit(con, f"review_{action}", actor=actor, individual_id=individual_id, image_id=image_id,
                       detail={"item": row["id"], "proposed": [verdict, proposed_id, proposed_p]})


def undo(pipeline: Pipeline, item_id: int, *, actor: str = "system") -> ReviewItem:
    """Undo the item's latest standing decision: the photo a confirmation enrolled leaves the
    catalogue (and the individual a `new` created, once it has no photo left); the item is
    back where it was (pending, or auto-accepted)."""
    catalog = pipeline.catalog
    row = _claim(catalog, item_id, None, allow=("pending", "auto", "decided"))
    try:
        dec = catalog._connect().execute(
            "SELECT * FROM review_decisions WHERE item_id = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
            (int(item_id),)).fetchone()
        if dec is None:
            raise ConflictError(f"review item {item_id} has no decision to undo")
        removed = _undo_decision(catalog, row, dec, actor)
    except BaseException:
        _release(catalog, row)
        raise
    if removed:
        pipeline.sync()  # the undone enrollment leaves FAISS and the keypoint index at once
    return get_item(catalog, item_id)


def _undo_decision(catalog: Catalog, row: sqlite3.Row, dec: sqlite3.Row, actor: str) -> list[int]:
    now = now_iso()
    removed: list[int] = []
    with catalog.transaction() as con:
        created = [dec["image_id"]] if dec["image_created"] and dec["image_id"] is not None else []
        created += [r[0] for r in con.execute("SELECT image_id FROM review_decision_images WHERE decision_id = ?"
                                              " AND created = 1", (dec["id"],))]
        for image_id in created:
            image = con.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
            if image is not None:
                catalog._audit(con, "remove_image", actor=actor, individual_id=image["individual_id"],
                               image_id=image["id"], detail={"why": f"undo of review decision {dec['id']}",
                                                             "image": dict(image)})
                con.execute("DELETE FROM best_photos WHERE image_id = ?", (image["id"],))
                con.execute("DELETE FROM images WHERE id = ?", (image["id"],))
                removed.append(int(image["id"]))
        if dec["individual_created"] and dec["individual_id"] is not None:
            ind = con.execute("SELECT * FROM individuals WHERE id = ?", (dec["individual_id"],)).fetchone()
            left = con.execute("SELECT COUNT(*) FROM images WHERE individual_id = ?", (dec["individual_id"],)).fetchone()[0]
            if ind is not None and left == 0:
                catalog._audit(con, "remove_individual", actor=actor, individual_id=ind["id"],
                               detail={"why": f"undo of review decision {dec['id']}", "individual": dict(ind)})
                con.execute("DELETE FROM best_photos WHERE individual_id = ?", (ind["id"],))
                con.execute("DELETE FROM individuals WHERE id = ?", (ind["id"],))
            elif ind is not None:  # other photos joined it since: the next undo of those removes it
                con.execute("UPDATE review_decisions SET individual_created = 1 WHERE id = (SELECT MIN(id) FROM"
                            " review_decisions WHERE individual_id = ? AND undone_at IS NULL AND id != ?"
                            " AND action IN ('confirm', 'new'))", (ind["id"], dec["id"]))
        con.execute("UPDATE review_decisions SET undone_at = ?, undone_by = ? WHERE id = ?", (now, actor, dec["id"]))
        if dec["action"] == "skip":
            con.execute("UPDATE review_items SET status = ?, skips = MAX(skips - 1, 0), updated_at = ? WHERE id = ?",
                        (dec["previous_status"], now, row["id"]))
        else:
            con.execute("UPDATE review_items SET status = ?, action = NULL, individual_id = NULL, image_id = NULL,"
                        " decided_at = NULL, decided_by = NULL, updated_at = ? WHERE id = ?",
                        (dec["previous_status"], now, row["id"]))
        catalog._audit(con, "review_undo", actor=actor, individual_id=dec["individual_id"], image_id=dec["image_id"],
                       detail={"item": row["id"], "decision": dec["id"], "action": dec["action"]})
    return removed


# -- keeping the queue small -----------------------------------------------------------------------
def archive_decided(catalog: Catalog, *, older_than_days: float = 0, actor: str = "system") -> int:
    """Archive decided and auto-accepted items (decided more than `older_than_days` ago): they
    leave the review lists but keep their decisions (and can still be undone)."""
    cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat(timespec="seconds")
    with catalog.transaction() as con:
        cur = con.execute("UPDATE review_items SET status = 'archived', updated_at = ? WHERE (status = 'decided'"
                          " AND decided_at <= ?) OR (status = 'auto' AND updated_at <= ?)",
                          (now_iso(), cutoff, cutoff))
        n = cur.rowcount
        if n:
            catalog._audit(con, "review_archive", actor=actor, detail={"items": n, "decided_before": cutoff})
    return n


def purge_expired(catalog: Catalog, retention_days: int, *, actor: str = "system") -> int:
    """Remove archived items decided more than `retention_days` ago (0: keep for ever); each
    leaves an audit row with everything it held. Catalogue images are not touched."""
    if retention_days <= 0:
        return 0
    cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).isoformat(timespec="seconds")
    with catalog.transaction() as con:
        rows = con.execute("SELECT * FROM review_items WHERE status = 'archived' AND COALESCE(decided_at, updated_at)"
                           " <= ?", (cutoff,)).fetchall()
        for row in rows:
            decisions = [dict(r) for r in con.execute("SELECT * FROM review_decisions WHERE item_id = ?", (row["id"],))]
            catalog._audit(con, "review_purge", actor=actor, individual_id=row["individual_id"],
                           image_id=row["image_id"], detail={"item": dict(row), "decisions": decisions,
                                                             "retention_days": retention_days})
            con.execute("DELETE FROM review_decisions WHERE item_id = ?", (row["id"],))
            con.execute("DELETE FROM review_items WHERE id = ?", (row["id"],))
    return len(rows)


__all__ = [
    "ACTIONS", "STATUSES", "GroupPhoto", "ReviewCandidate", "ReviewItem", "ReviewPhoto", "record_group", "archive_decided", "confirmations_since", "counts",
    "decide", "decide_new", "get_item", "last_seen", "list_items", "merged_into", "purge_expired", "record_identification", "review_hook",
    "stations", "undo",
]


def last_seen(catalog: Catalog, individual_ids: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    """individual id -> (time, station) of its latest dated catalogue photo, for the reviewer."""
    out: dict[int, tuple[str | None, str | None]] = {}
    ids = sorted({int(i) for i in individual_ids})
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = catalog._connect().execute(
            "SELECT individual_id, timestamp, station FROM images WHERE timestamp IS NOT NULL AND individual_id IN"
            f" ({','.join('?' * len(chunk))}) ORDER BY timestamp", chunk)
        out.update({int(r[0]): (r[1], r[2]) for r in rows})  # ascending: the latest wins
    return out
