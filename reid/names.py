"""Individual names: one rule for what a name may be, used by the catalogue, CSVs and the API.

A name is what a person calls the animal ("Tau Sheri", "7"); an id is the catalogue's row
number. They never stand in for each other: routes address individuals by id, CSVs and JSON
bodies by exact name, and a name made of digits is a name (numbered leopards are common).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import TYPE_CHECKING

from reid.errors import ReidError

if TYPE_CHECKING:
    from reid.catalog import Catalog

MAX_NAME_LENGTH = 200


def _forbidden(ch: str) -> bool:
    """Characters a name may never hold: control (Cc), invisible format (Cf, but the zero-width
    joiner of emoji and scripts), lone surrogates (Cs), private-use code points (Co), and the
    slashes of paths. (Unassigned code points are allowed: a later Unicode may assign them, and
    listing them would make the pattern too long for clients and generators.)"""
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cs", "Co") or (cat == "Cf" and ch != "\u200d") or ch in "/\\"


def _char_class(chars: list[int], negate: bool) -> str:
    """A regex character class of `chars` as ranges; BMP code points escaped (\\uXXXX, valid in
    Python and ECMA-262 patterns), others literal."""
    def one(cp: int) -> str:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else chr(cp)
    ranges, start, prev = [], None, None
    for cp in chars:
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            ranges.append((start, prev))
            start = prev = cp
    if start is not None:
        ranges.append((start, prev))
    body = "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def _name_pattern() -> str:
    space = [cp for cp in range(sys.maxunicode + 1) if chr(cp).isspace()]  # what str.strip() removes
    # Lone surrogates are left out of the pattern: validators that work on Unicode scalar values
    # (ECMA-262 with the u flag, Rust) cannot name them and would drop the whole pattern.
    # validate_name still refuses them (_forbidden).
    forbidden = [cp for cp in range(sys.maxunicode + 1) if _forbidden(chr(cp)) and not 0xD800 <= cp <= 0xDFFF]
    edge = _char_class(sorted(set(space) | set(forbidden)), negate=True)  # first and last character
    inner = _char_class(forbidden, negate=True)
    ws = _char_class(space, negate=False)
    return f"^{ws}*{edge}(?:{inner}{{0,{MAX_NAME_LENGTH - 2}}}{edge})?{ws}*$"


#: THE rule for a name as given (before trimming): optional surrounding whitespace around 1 to
#: MAX_NAME_LENGTH characters, none of them forbidden. validate_name enforces it and the API
#: declares it as the JSON-schema `pattern` of every name field, so both say the same.
NAME_PATTERN = _name_pattern()
_NAME_RE = re.compile(NAME_PATTERN)


class InvalidNameError(ReidError):
    """An individual name that cannot be stored (empty, control characters, '/', too long)."""


def validate_name(raw: object, *, what: str = "an individual") -> str:
    """The name as it will be stored (trimmed), or InvalidNameError with a sentence saying why."""
    if not isinstance(raw, str):
        raise InvalidNameError(f"{what}'s name must be text, not {type(raw).__name__}")
    name = raw.strip()
    if not name:
        raise InvalidNameError(f"{what} needs a non-empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{what}'s name may have at most {MAX_NAME_LENGTH} characters, not {len(name)}")
    for ch in name:
        if ch in "/\\":
            raise InvalidNameError(f"the name {name!r} contains a slash; use another separator (e.g. '-')")
        if _forbidden(ch):
            kind = "a private-use" if unicodedata.category(ch) == "Co" else "the control or invisible"
            raise InvalidNameError(f"the name {name!r} contains {kind} character U+{ord(ch):04X}")
    if not _NAME_RE.match(raw):  # the checks above say why; this keeps them and the pattern one rule
        raise InvalidNameError(f"the name {name!r} is not allowed")
    return unicodedata.normalize("NFC", name)


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
