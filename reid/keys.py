"""API keys and web sessions, kept in the catalogue: only SHA-256 hashes are stored.

    reid keys add NAME --role viewer|reviewer|admin   # prints the key once
    reid keys list | reid keys revoke NAME

A key is 32 random bytes (URL-safe text with a `reid_` prefix). Its name is the actor the
audit trail records. Once any key has been created (revoked ones included) the service asks
every caller for one: revoking the last key never reopens the service to everyone.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reid.catalog import Catalog, now_iso
from reid.errors import NotFoundError, ReidError
from reid.names import validate_name

ROLES = ("viewer", "reviewer", "admin")
KEY_PREFIX = "reid_"
SESSION_HOURS = 12


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    created_at: str
    revoked_at: str | None = None


def add_key(catalog: Catalog, name: str, role: str, *, actor: str = "cli") -> str:
    """Create a key; returns the key itself (shown once: only its hash is kept)."""
    if role not in ROLES:
        raise ReidError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    name = validate_name(name, what="a key")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with catalog.transaction() as con:
        if con.execute("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone():
            raise ReidError(f"a key named {name!r} exists; revoke it first (reid keys revoke {name!r})")
        con.execute("INSERT INTO api_keys(name, role, key_sha256, created_at) VALUES(?,?,?,?)",
                    (name, role, key_hash(key), now_iso()))
        catalog._audit(con, "add_key", actor=actor, detail={"name": name, "role": role})
    return key


def list_keys(catalog: Catalog) -> list[ApiKey]:
    rows = catalog._connect().execute("SELECT name, role, created_at, revoked_at FROM api_keys ORDER BY id").fetchall()
    return [ApiKey(r["name"], r["role"], r["created_at"], r["revoked_at"]) for r in rows]


def revoke_key(catalog: Catalog, name: str, *, actor: str = "cli") -> None:
    with catalog.transaction() as con:
        rows = con.execute("SELECT key_sha256 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchall()
        if not rows:
            raise NotFoundError(f"no active key named {name!r} (reid keys list shows them)")
        con.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now_iso(), name))
        # its browser sessions end with it
        con.executemany("DELETE FROM web_sessions WHERE key_sha256 = ?", [(r[0],) for r in rows])
        catalog._audit(con, "revoke_key", actor=actor, detail={"name": name})


def keys_exist(catalog: Catalog) -> bool:
    """True once any key was ever created: from then on every caller needs one."""
    return catalog._connect().execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None


def key_by_hash(catalog: Catalog, digest: str) -> ApiKey | None:
    """The active key with this hash, or None."""
    row = catalog._connect().execute(
        "SELECT name, role, created_at FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL", (digest,)).fetchone()
    return None if row is None else ApiKey(row["name"], row["role"], row["created_at"])


# -- web sessions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    key_sha256: str  # the key (or REID_API_TOKEN) that signed in; checked again on every request
    csrf_token: str


def create_session(catalog: Catalog, digest: str) -> tuple[str, Session]:
    """A new session for the key with hash `digest`: (cookie value, session). Only the cookie's hash is stored."""
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with catalog.transaction() as con:
        con.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now.isoformat(timespec="seconds"),))
        con.execute("INSERT INTO web_sessions VALUES(?,?,?,?,?)",
                    (key_hash(sid), digest, csrf, now.isoformat(timespec="seconds"),
                     (now + timedelta(hours=SESSION_HOURS)).isoformat(timespec="seconds")))
    return sid, Session(digest, csrf)


def session(catalog: Catalog, sid: str) -> Session | None:
    row = catalog._connect().execute(
        "SELECT key_sha256, csrf_token FROM web_sessions WHERE id_sha256 = ? AND expires_at >= ?",
        (key_hash(sid), datetime.now(UTC).isoformat(timespec="seconds"))).fetchone()
    return None if row is None else Session(row[0], row[1])


def end_session(catalog: Catalog, sid: str) -> None:
    with catalog.transaction() as con:
        con.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (key_hash(sid),))
