"""Schemathesis hooks for the API fuzz run (tests/test_api_contract.py loads them through
SCHEMATHESIS_HOOKS=tests.fuzz_hooks).

Two things an OpenAPI document cannot say, so a generator cannot know them:

- a file field must hold a photo (a decodable image of at least 16x16 pixels) and the box must lie
  inside that photo (the part of it inside at least MIN_CROP pixels each way, as reid.imageio.crop
  cuts it); box fields are found by their declared pattern, on every upload route. Requests the fuzzer generates as *valid* get a real photo (FUZZ_PHOTO) and a
  box that fits it, so "valid data accepted" is checked for every other field through the real
  model, instead of every valid upload being refused as "not an image";
- the timestamp's `format: date-time-local` (service.deps.TIMESTAMP_FORMAT): ISO 8601 digits that
  are also a real date and time, with an optional offset.

Invalid (negative) requests are left exactly as generated.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache
from typing import Any

import schemathesis
from hypothesis import reject
from hypothesis import strategies as st
from schemathesis.transport.serialization import Binary

from reid.imageio import MIN_CROP as MIN_BOX  # crop() refuses a region narrower or lower than this
from service.deps import BOX_PATTERN


def _local_timestamp(moment: datetime, style: int, offset_minutes: int | None) -> str:
    """A date alone (style 0) or a date and time to the minute, second or microsecond, with 'T' or
    ' ' between them and an optional offset ('Z' for zero)."""
    if style == 0:
        return moment.date().isoformat()
    text = moment.isoformat(sep="T" if style % 2 else " ", timespec=("minutes", "seconds", "microseconds")[style % 3])
    if offset_minutes is None:
        return text
    if offset_minutes == 0:
        return text + "Z"
    sign, minutes = "+" if offset_minutes > 0 else "-", abs(offset_minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


schemathesis.openapi.format(
    "date-time-local",
    st.builds(_local_timestamp, st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
              st.integers(0, 5), st.none() | st.integers(-12 * 60, 14 * 60)),
)


@cache
def _photo() -> tuple[bytes, int, int]:
    """The photo for valid uploads, and its width and height."""
    import cv2

    path = os.environ["FUZZ_PHOTO"]
    h, w = cv2.imread(path).shape[:2]
    with open(path, "rb") as fh:
        return fh.read(), w, h


def _is_file(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "binary" or schema.get("contentMediaType") == "application/octet-stream"


def _form_schema(case: Any) -> dict[str, Any]:
    """The multipart body schema of the case's operation, $ref resolved."""
    body = case.operation.definition.raw.get("requestBody", {})
    schema = body.get("content", {}).get("multipart/form-data", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = case.operation.schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _is_box(name: str, schema: dict[str, Any]) -> bool:
    """A box field of any upload route, found by the pattern the service declares for boxes
    (service.deps.BOX_PATTERN), so a route added later with another field name is covered too."""
    return schema.get("pattern") == BOX_PATTERN or (name == "box" and not schema)


def _fits(box: str, width: int, height: int) -> bool:
    try:
        x, y, w, h = (float(v) for v in box.split(","))
    except ValueError:
        return False
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return x1 - x0 >= MIN_BOX and y1 - y0 >= MIN_BOX


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Runs before every request of every phase (examples, coverage, fuzzing, stateful)."""
    if any(value is None for value in (case.path_parameters or {}).values()):
        # A stateful link filled a path parameter from a null response field (e.g. a review
        # item's individual_id before it is confirmed). Schemathesis skips a null it extracts
        # by itself but not one picked from a wildcard match (`items/*/individual_id`, 4.32.5);
        # no URL can carry a null, so such a step is discarded, as it would have been.
        reject()
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    properties = _form_schema(case).get("properties", {})
    photo, width, height = _photo()
    body = case.body  # edited in place: schemathesis compares the body it generated with what is sent
    for name, value in list(body.items()):
        schema = properties.get(name, {})
        if _is_file(schema):
            body[name] = Binary(photo)
        elif schema.get("type") == "array" and _is_file(schema.get("items", {})) and isinstance(value, list):
            body[name] = [Binary(photo) for _ in value]
        elif _is_box(name, schema) and isinstance(value, str) and value and not _fits(value, width, height):
            body[name] = f"{MIN_BOX},{MIN_BOX},{width // 2},{height // 2}"
    # The edits keep a valid case valid (they are what the document cannot say). Schemathesis
    # would re-check an edited body and count any body with a file in it as invalid; this makes
    # the edited body the one it generated (schemathesis is pinned: a private method).
    case._sync_validated_hashes()
