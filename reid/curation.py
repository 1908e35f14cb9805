"""Catalogue curation: merge two individuals, move an image, rename, sex and notes, best photos.

Every change is one transaction that writes a `curation` row holding exactly what it changed
(before and after) and an audit row; `undo` puts that back, and refuses (ConflictError) when
something it would overwrite has changed since, rather than restore half of it.
Individuals are addressed by id only.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reid.catalog import Catalog, missing_individual, normalise_viewpoint, now_iso
from reid.errors import ConflictError, NotFoundError, ReidError

if TYPE_CHECKING:
    from reid.identify import Pipeline

SEXES = ("female", "male", "unknown")


@dataclass(frozen=True)
class CurationRecord:
    id: int
    at: str
    actor: str
    action: str
    individual_id: int | None
    target_id: int | None
    image_id: int | None
    before: dict[str, Any]
    after: dict[str, Any]
    undone_at: str | None
    undone_by: str | None


def _record(row: sqlite3.Row) -> CurationRecord:
    return CurationRecord(id=row["id"], at=row["at"], actor=row["actor"], action=row["action"],
                          individual_id=row["individual_id"], target_id=row["target_id"], image_id=row["image_id"],
                          before=json.loads(row["before"]), after=json.loads(row["after"]),
                          undone_at=row["undone_at"], undone_by=row["undone_by"])


def get_record(catalog: Catalog, record_id: int) -> CurationRecord:
    row = catalog._connect().execute("SELECT * FROM curation WHERE id = ?", (int(record_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"no curation record {record_id}")
    return _record(row)


def history(catalog: Catalog, individual_id: int | None = None, limit: int = 50) -> list[CurationRecord]:
    sql, args = "SELECT * FROM curation", []
    if individual_id is not None:
        sql += " WHERE individual_id = ? OR target_id = ?"
        args = [int(individual_id), int(individual_id)]
    rows = catalog._connect().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit)))
    return [_record(r) for r in rows]


def _individual_row(con: sqlite3.Connection, individual_id: int) -> sqlite3.Row:
    row = con.execute("SELECT * FROM individuals WHERE id = ?", (int(individual_id),)).fetchone()
    if row is None:
        raise missing_individual(con, individual_id)
    return row


def _write(con: sqlite3.Connection, catalog: Catalog, action: str, actor: str, *, individual_id: int | None,
           target_id: int | None = None, image_id: int | None = None, before: dict[str, Any],
           after: dict[str, Any]) -> int:
    cur = con.execute(
        "INSERT INTO curation(at, actor, action, individual_id, target_id, image_id, before, after)"
        " VALUES(?,?,?,?,?,?,?,?)",
        (now_iso(), actor, action, individual_id, target_id, image_id, json.dumps(before), json.dumps(after)))
    catalog._audit(con, action if action != "update" else "update_individual", actor=actor,
                   individual_id=individual_id, image_id=image_id,
                   detail={"curation": cur.lastrowid, "target_id": target_id, "before": before, "after": after})
    return int(cur.lastrowid)


def _ids(con: sqlite3.Connection, sql: str, *args: Any) -> list[int]:
    return [int(r[0]) for r in con.execute(sql, args)]


def _set(con: sqlite3.Connection, table: str, column: str, value: Any, ids: list[int]) -> None:
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        con.execute(f"UPDATE {table} SET {column} = ? WHERE id IN ({','.join('?' * len(chunk))})", (value, *chunk))


# -- merge -------------------------------------------------------------------------------------------------
def merge(pipeline: Pipeline, source_id: int, into_id: int, *, actor: str = "system") -> CurationRecord:
    """All of `source_id` (images, their sightings, review history, best photos where the other
    has none) becomes `into_id`; `source_id` is removed (its row is kept in the record)."""
    catalog = pipeline.catalog
    if int(source_id) == int(into_id):
        raise ReidError("an individual cannot be merged into itself")
    with catalog.transaction() as con:
        src = _individual_row(con, source_id)
        _individual_row(con, into_id)
        images = _ids(con, "SELECT id FROM images WHERE individual_id = ?", src["id"])
        items = _ids(con, "SELECT id FROM review_items WHERE individual_id = ?", src["id"])
        decisions = _ids(con, "SELECT id FROM review_decisions WHERE individual_id = ?", src["id"])
        taken = {r[0] for r in con.execute("SELECT viewpoint FROM best_photos WHERE individual_id = ?", (into_id,))}
        best = [dict(r) for r in con.execute("SELECT * FROM best_photos WHERE individual_id = ?", (src["id"],))]
        _set(con, "images", "individual_id", int(into_id), images)
        _set(con, "review_items", "individual_id", int(into_id), items)
        _set(con, "review_decisions", "individual_id", int(into_id), decisions)
        con.execute("DELETE FROM best_photos WHERE individual_id = ?", (src["id"],))
        moved_best = [b for b in best if b["viewpoint"] not in taken]
        for b in moved_best:
            con.execute("INSERT INTO best_photos VALUES(?,?,?)", (int(into_id), b["viewpoint"], b["image_id"]))
        con.execute("DELETE FROM individuals WHERE id = ?", (src["id"],))
        high = con.execute("SELECT value FROM meta WHERE key = 'individual_id_high_water'").fetchone()
        con.execute("INSERT OR REPLACE INTO meta VALUES('individual_id_high_water', ?)",
                    (str(max(int(src["id"]), int(high[0]) if high else 0)),))
        record_id = _write(con, catalog, "merge", actor, individual_id=src["id"], target_id=int(into_id), before={
            "individual": dict(src), "images": images, "review_items": items, "review_decisions": decisions,
            "best_photos": best}, after={"into_id": int(into_id), "best_photos_moved": [b["viewpoint"] for b in moved_best]})
    pipeline.sync()  # images moved or left: the indexes follow at once (reid.catalog_sync)
    return get_record(catalog, record_id)


def _undo_merge(con: sqlite3.Connection, rec: CurationRecord) -> None:
    ind = rec.before["individual"]
    into = rec.target_id
    if con.execute("SELECT 1 FROM individuals WHERE id = ?", (ind["id"],)).fetchone():
        raise ConflictError(f"individual id {ind['id']} exists again; cannot restore it")
    other = con.execute("SELECT id FROM individuals WHERE name = ?", (ind["name"],)).fetchone()
    if other is not None:
        raise ConflictError(f"the name {ind['name']!r} is now used by individual {other['id']}; rename it first")
    images = rec.before["images"]
    if images:
        still = _ids(con, f"SELECT id FROM images WHERE individual_id = ? AND id IN ({','.join('?' * len(images))})",
                     into, *images)
        if len(still) != len(images):
            gone = sorted(set(images) - set(still))
            raise ConflictError(f"images {gone[:10]} are no longer with individual {into}; move them back first")
    con.execute("INSERT INTO individuals(id, name, sex, notes, created_at) VALUES(?,?,?,?,?)",
                (ind["id"], ind["name"], ind["sex"], ind["notes"], ind["created_at"]))
    _set(con, "images", "individual_id", ind["id"], images)
    _set(con, "review_items", "individual_id", ind["id"], rec.before["review_items"])
    _set(con, "review_decisions", "individual_id", ind["id"], rec.before["review_decisions"])
    for vp in rec.after["best_photos_moved"]:
        con.execute("DELETE FROM best_photos WHERE individual_id = ? AND viewpoint = ?", (into, vp))
    for b in rec.before["best_photos"]:
        con.execute("INSERT OR REPLACE INTO best_photos VALUES(?,?,?)", (ind["id"], b["viewpoint"], b["image_id"]))


# -- move an image ---------------------------------------------------------------------------------------
def move_image(pipeline: Pipeline, image_id: int, individual_id: int, *, actor: str = "system") -> CurationRecord:
    """File one image under another individual (a split); the old one keeps the rest."""
    catalog = pipeline.catalog
    with catalog.transaction() as con:
        image = con.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if image is None or image["individual_id"] is None:
            raise NotFoundError(f"no catalogue image {image_id}")
        _individual_row(con, individual_id)
        if image["individual_id"] == int(individual_id):
            raise ConflictError(f"image {image_id} already belongs to individual {individual_id}")
        best = [dict(r) for r in con.execute("SELECT * FROM best_photos WHERE image_id = ?", (int(image_id),))]
        con.execute("DELETE FROM best_photos WHERE image_id = ?", (int(image_id),))
        con.execute("UPDATE images SET individual_id = ? WHERE id = ?", (int(individual_id), int(image_id)))
        record_id = _write(con, catalog, "move", actor, individual_id=image["individual_id"],
                           target_id=int(individual_id), image_id=int(image_id),
                           before={"individual_id": image["individual_id"], "best_photos": best},
                           after={"individual_id": int(individual_id)})
    pipeline.sync()  # images moved or left: the indexes follow at once (reid.catalog_sync)
    return get_record(catalog, record_id)


def _undo_move(con: sqlite3.Connection, rec: CurationRecord) -> None:
    image = con.execute("SELECT individual_id FROM images WHERE id = ?", (rec.image_id,)).fetchone()
    if image is None or image["individual_id"] != rec.after["individual_id"]:
        raise ConflictError(f"image {rec.image_id} has changed since it was moved")
    _individual_row(con, rec.before["individual_id"])
    con.execute("UPDATE images SET individual_id = ? WHERE id = ?", (rec.before["individual_id"], rec.image_id))
    for b in rec.before["best_photos"]:
        con.execute("INSERT OR REPLACE INTO best_photos VALUES(?,?,?)", (b["individual_id"], b["viewpoint"], b["image_id"]))


# -- name, sex, notes ------------------------------------------------------------------------------------
def update_individual(catalog: Catalog, individual_id: int, *, name: str | None = None, sex: str | None = None,
                      notes: str | None = None, actor: str = "system") -> CurationRecord:
    """Rename, set sex or notes (only the fields given change)."""
    changes: dict[str, Any] = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise ReidError("a name must be 1-200 characters")
        changes["name"] = name
    if sex is not None:
        if sex not in SEXES:
            raise ReidError(f"sex must be one of {', '.join(SEXES)}; not {sex!r}")
        changes["sex"] = sex
    if notes is not None:
        if len(notes) > 5000:
            raise ReidError("notes are limited to 5000 characters")
        changes["notes"] = notes
    if not changes:
        raise ReidError("nothing to change: give name, sex or notes")
    with catalog.transaction() as con:
        row = _individual_row(con, individual_id)
        if "name" in changes and changes["name"] != row["name"]:
            other = con.execute("SELECT id FROM individuals WHERE name = ?", (changes["name"],)).fetchone()
            if other is not None:
                raise ConflictError(f"the name {changes['name']!r} is taken by individual {other['id']}")
        before = {k: row[k] for k in changes}
        for column, value in changes.items():  # column names come from the fixed set above
            con.execute(f"UPDATE individuals SET {column} = ? WHERE id = ?", (value, int(individual_id)))
        record_id = _write(con, catalog, "update", actor, individual_id=int(individual_id), before=before, after=changes)
    return get_record(catalog, record_id)


def _undo_update(con: sqlite3.Connection, rec: CurationRecord) -> None:
    row = _individual_row(con, rec.individual_id)
    changed = [k for k, v in rec.after.items() if row[k] != v]
    if changed:
        raise ConflictError(f"individual {rec.individual_id}'s {', '.join(changed)} changed again since; undo that first")
    if "name" in rec.before:
        other = con.execute("SELECT id FROM individuals WHERE name = ? AND id != ?",
                            (rec.before["name"], rec.individual_id)).fetchone()
        if other is not None:
            raise ConflictError(f"the old name {rec.before['name']!r} is now used by individual {other['id']}")
    for column, value in rec.before.items():
        con.execute(f"UPDATE individuals SET {column} = ? WHERE id = ?", (value, rec.individual_id))


# -- best photo per flank --------------------------------------------------------------------------------
def set_best_photo(catalog: Catalog, individual_id: int, image_id: int, *, viewpoint: str | None = None,
                   actor: str = "system") -> CurationRecord:
    """Mark an image as the individual's best photo of a flank (default: the image's own flank)."""
    with catalog.transaction() as con:
        _individual_row(con, individual_id)
        image = con.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if image is None or image["individual_id"] != int(individual_id):
            # a conflict, not a missing resource: the individual addressed exists (HTTP 409)
            raise ConflictError(f"individual {individual_id} has no image {image_id}")
        vp = normalise_viewpoint(viewpoint) if viewpoint else image["viewpoint"]
        old = con.execute("SELECT image_id FROM best_photos WHERE individual_id = ? AND viewpoint = ?",
                          (int(individual_id), vp)).fetchone()
        con.execute("INSERT OR REPLACE INTO best_photos VALUES(?,?,?)", (int(individual_id), vp, int(image_id)))
        record_id = _write(con, catalog, "best_photo", actor, individual_id=int(individual_id), image_id=int(image_id),
                           before={"viewpoint": vp, "image_id": old["image_id"] if old else None},
                           after={"viewpoint": vp, "image_id": int(image_id)})
    return get_record(catalog, record_id)


def _undo_best(con: sqlite3.Connection, rec: CurationRecord) -> None:
    vp = rec.after["viewpoint"]
    now = con.execute("SELECT image_id FROM best_photos WHERE individual_id = ? AND viewpoint = ?",
                      (rec.individual_id, vp)).fetchone()
    if now is None or now["image_id"] != rec.after["image_id"]:
        raise ConflictError(f"the best {vp} photo of individual {rec.individual_id} changed since")
    if rec.before["image_id"] is None:
        con.execute("DELETE FROM best_photos WHERE individual_id = ? AND viewpoint = ?", (rec.individual_id, vp))
    else:
        con.execute("UPDATE best_photos SET image_id = ? WHERE individual_id = ? AND viewpoint = ?",
                    (rec.before["image_id"], rec.individual_id, vp))


def best_photos(catalog: Catalog, individual_id: int) -> dict[str, int]:
    rows = catalog._connect().execute("SELECT viewpoint, image_id FROM best_photos WHERE individual_id = ?",
                                      (int(individual_id),))
    return {r[0]: int(r[1]) for r in rows}


# -- undo ------------------------------------------------------------------------------------------------
_UNDO = {"merge": _undo_merge, "move": _undo_move, "update": _undo_update, "best_photo": _undo_best}


def undo(pipeline: Pipeline, record_id: int, *, actor: str = "system") -> CurationRecord:
    """Put back exactly what one curation change changed, or refuse if that is no longer possible."""
    catalog = pipeline.catalog
    with catalog.transaction() as con:
        row = con.execute("SELECT * FROM curation WHERE id = ?", (int(record_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no curation record {record_id}")
        rec = _record(row)
        if rec.undone_at:
            raise ConflictError(f"curation {record_id} was already undone by {rec.undone_by} at {rec.undone_at}")
        _UNDO[rec.action](con, rec)
        con.execute("UPDATE curation SET undone_at = ?, undone_by = ? WHERE id = ?", (now_iso(), actor, rec.id))
        catalog._audit(con, f"undo_{rec.action}", actor=actor, individual_id=rec.individual_id, image_id=rec.image_id,
                       detail={"curation": rec.id})
    if rec.action in ("merge", "move"):
        pipeline.sync()  # images moved or left: the indexes follow at once (reid.catalog_sync)
    return get_record(catalog, record_id)


__all__ = ["SEXES", "CurationRecord", "best_photos", "get_record", "history", "merge", "move_image",
           "set_best_photo", "undo", "update_individual"]
