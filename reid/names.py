"""Individual names: one rule for what a name may be, used by the catalogue, CSVs and the API.

A name is what a person calls the animal ("Tau Sheri", "7"); an id is the catalogue's row
number. They never stand in for each other: routes address individuals by id, CSVs and JSON
bodies by exact name, and a name made of digits is a name (numbered leopards are common).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from reid.errors import ReidError

if TYPE_CHECKING:
    from reid.catalog import Catalog

MAX_NAME_LENGTH = 200


class InvalidNameError(ReidError):
    """An individual name that cannot be stored (empty, control characters, '/', too long)."""


def validate_name(raw: object, *, what: str = "an individual") -> str:
    """The name as it will be stored (trimmed), or InvalidNameError with a sentence saying why."""
    if not isinstance(raw, str):
        raise InvalidNameError(f"{what}'s name must be text, not {type(raw).__name__}")
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        raise InvalidNameError(f"{what} needs a non-empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{what}'s name may have at most {MAX_NAME_LENGTH} characters, not {len(name)}")
    for ch in name:
        cat = unicodedata.category(ch)
        # Cc: control (NUL, newline, ...); Cf: invisible format characters (bidi overrides);
        # Cs: lone surrogates; Co/Cn: private-use and unassigned code points.
        if cat in ("Cc", "Cs") or (cat == "Cf" and ch not in "\u200d"):
            raise InvalidNameError(f"the name {name!r} contains the control or invisible character U+{ord(ch):04X}")
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"the name {name!r} contains a slash; use another separator (e.g. '-')")
    if all(unicodedata.category(ch) in ("Co", "Cn", "Zs") for ch in name):
        raise InvalidNameError(f"the name {name!r} has no visible, assigned character")
    return name


def name_id_collisions(catalog: Catalog) -> list[tuple[str, int, str | None]]:
    """Names made of digits that equal another individual's id: (name, its id, the other's name).

    Before names and ids were kept apart, a request for "3" meant id 3; photos enrolled under
    such a name through the old lookup may have gone to the individual whose id it is.
    """
    individuals = catalog.list_individuals()
    by_id = {ind.id: ind.name for ind in individuals}
    out = []
    for ind in individuals:
        if ind.name.isascii() and ind.name.isdigit():
            other = int(ind.name)
            if other != ind.id and other in by_id:
                out.append((ind.name, ind.id, by_id[other]))
    return out
