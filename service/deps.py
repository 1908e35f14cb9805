"""Route dependencies: the shared pipeline, keys and roles, bounded upload reading, image form fields.

Everything a route needs from the request that is not the route's own logic lives here,
so each router reads as what it does: parse, call the pipeline, convert the result.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from fastapi import Depends, Form, HTTPException, Path, Request, UploadFile, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reid import keys
from reid.budget import PixelBudget
from reid.catalog import Catalog
from reid.errors import BusyError
from reid.identify import Pipeline
from reid.keypoints import crops
from service.schemas import MAX_ROW_ID, Viewpoint
from service.settings import ServerSettings

T = TypeVar("T")

#: Upload chunk size: small enough that an oversize upload is refused after at most
#: one chunk past the limit, large enough that a 10 MB photo is a handful of reads.
UPLOAD_CHUNK = 256 * 1024


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
#: A catalogue row id in a path: SQLite integers are 64-bit, so the document and the server
#: refuse larger numbers (422) instead of the database overflowing (500).
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description="a key (`reid keys add`) or REID_API_TOKEN, once keys exist")


class Role(IntEnum):
    """What a caller may do; each role may do everything the roles below it may."""

    anonymous = 0  # no key where keys are needed: only the pages that hold no data
    viewer = 1  # read the catalogue, identify
    reviewer = 2  # decide review items (enrolls the reviewed photo, may create its individual)
    admin = 3  # enroll uploads and CSVs, merge, move, delete, retrain, keys


@dataclass(frozen=True)
class Actor:
    """Who is calling: the name recorded in the audit trail and the role that was proven."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role >= role


SESSION_COOKIE = "reid_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANONYMOUS = Actor("anonymous", Role.anonymous)


def protected(settings: ServerSettings, catalog: Catalog) -> bool:
    """Keys mode: REID_API_TOKEN is set or a key was ever created. Otherwise laptop mode."""
    return bool(settings.api_token) or keys.keys_exist(catalog)


def anonymous_actor(settings: ServerSettings, catalog: Catalog) -> Actor:
    """Who a request without a valid key is: in laptop mode everyone on this machine is admin
    ("local"); in keys mode `anonymous`, whom every data route turns away. `authenticate` and
    the OpenAPI document (service.contract declares a bearer key exactly where this actor's
    role is not enough) both ask here."""
    return ANONYMOUS if protected(settings, catalog) else Actor("local", Role.admin)


def actor_for_key(settings: ServerSettings, catalog: Catalog, digest: str) -> Actor | None:
    """The actor a key hash stands for: REID_API_TOKEN (admin) or an active `reid keys` key."""
    if settings.api_token and secrets.compare_digest(digest, keys.key_hash(settings.api_token)):
        return Actor("api-token", Role.admin)
    found = keys.key_by_hash(catalog, digest)
    return None if found is None else Actor(found.name, Role[found.role])


def _session_actor(request: Request, settings: ServerSettings, catalog: Catalog) -> tuple[Actor, str] | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 200:
        return None
    found = keys.session(catalog, sid)
    if found is None:
        return None
    actor = actor_for_key(settings, catalog, found.key_sha256)  # a revoked key ends its sessions
    return None if actor is None else (actor, found.csrf_token)


async def _csrf_given(request: Request) -> str:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # parsed once per request: FastAPI reuses it for the route
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    return given


async def authenticate(request: Request, settings: SettingsDep, pipeline: PipelineDep,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The caller's identity; the one place that turns a request into an `Actor`.

    Laptop mode (no key was ever created, no REID_API_TOKEN): everyone is admin ("local") -
    `reid serve` then binds loopback only. Keys mode: a bearer key (REID_API_TOKEN or a
    `reid keys` key) or a signed-in browser's session cookie; otherwise `anonymous`, which
    `require_role` turns away. Writes made with a session cookie must carry its CSRF token
    (header X-CSRF-Token or form field csrf_token); bearer keys need none (a browser never
    adds them by itself). Sets request.state.actor and request.state.csrf_token for pages.
    """
    catalog = pipeline.catalog
    actor, csrf = anonymous_actor(settings, catalog), ""
    if actor.role == Role.admin:  # laptop mode
        csrf = request.app.state.local_csrf_token
    elif credentials is not None and credentials.credentials:
        actor = actor_for_key(settings, catalog, keys.key_hash(credentials.credentials)) or ANONYMOUS
    elif (signed_in := _session_actor(request, settings, catalog)) is not None:
        actor, csrf = signed_in
        if request.method not in _SAFE_METHODS:
            given = await _csrf_given(request)
            if not given or not secrets.compare_digest(given.encode(), csrf.encode()):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    detail=f"this write comes from a signed-in browser without its CSRF token "
                                           f"(header {CSRF_HEADER} or form field {CSRF_FIELD}); reload the page")
    request.state.actor = actor
    request.state.csrf_token = csrf
    return actor


AuthDep = Annotated[Actor, Depends(authenticate)]


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def require_role(role: Role) -> Callable[..., Actor]:
    """A dependency that lets the request through only for callers with at least `role`."""

    def dependency(request: Request, actor: AuthDep) -> Actor:
        if actor.may(role):
            return actor
        if actor.role == Role.anonymous:
            if _wants_page(request):  # a browser: to the sign-in page, and back here afterwards
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
                raise HTTPException(status.HTTP_303_SEE_OTHER, detail="sign in first",
                                    headers={"Location": f"/signin?next={target}"})
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="this route needs the header 'Authorization: Bearer <key>' with a key of the "
                       f"{role.name} role or above (reid keys add NAME --role {role.name})",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"this route needs the {role.name} role; {actor.name!r} is {actor.role.name}")

    dependency.required_role = role  # type: ignore[attr-defined]  # read by service.contract (OpenAPI)
    return dependency


ViewerDep = Annotated[Actor, Depends(require_role(Role.viewer))]
ReviewerDep = Annotated[Actor, Depends(require_role(Role.reviewer))]
AdminDep = Annotated[Actor, Depends(require_role(Role.admin))]


def may_see_locations(actor: Actor, settings: ServerSettings) -> bool:
    """Coordinates, exact stations, server paths and GPS EXIF are poaching-sensitive: only
    roles allowed to see locations get them (pages, JSON, image files, reports, exports alike).
    The lowest such role is the setting REID_LOCATION_ROLE (default reviewer)."""
    return actor.may(Role[settings.location_role])


def require_token(actor: AdminDep) -> str:
    """Write routes (enroll, create): the admin role; returns the actor name for the audit trail."""
    return actor.name


ActorDep = Annotated[str, Depends(require_token)]


async def run_model(request: Request, fn: Callable[[], T]) -> T:
    """Run CPU-bound work (decode, embed, enroll) in a worker thread, never on the event loop.

    A dedicated limiter bounds how many run at once: each ONNX/torch call already uses
    every core, so more parallel calls only add memory (decoded photos) and contention.
    """
    limiter = request.app.state.model_limiter
    waiting = request.app.state.settings.max_waiting_requests
    if limiter.statistics().tasks_waiting >= waiting:
        raise BusyError(f"{waiting} requests are already waiting for the model; try again in a few seconds")
    return await anyio.to_thread.run_sync(fn, limiter=limiter)


def pixel_budget(request: Request) -> PixelBudget:
    """This request's decoded-pixel allowance (REID_MAX_REQUEST_PIXELS), drawn from the process-wide
    pool (REID_MAX_INFLIGHT_PIXELS). Use it as `with pixel_budget(request) as budget:` around the
    work that holds the decoded images, and pass it to `Pipeline.load_query(..., budget=budget)`."""
    settings = request.app.state.settings
    return PixelBudget(settings.max_request_pixels, request.app.state.pixel_pool, wait_s=settings.pixel_wait_s)


# -- uploads ------------------------------------------------------------------------------------------
def too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"upload is larger than the limit of {limit / 2**20:.2f} MiB ({limit} bytes, REID_MAX_UPLOAD_BYTES)",
    )


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, read in chunks; stops as soon as it passes `limit` (413)."""
    if upload.size is not None and upload.size > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(UPLOAD_CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def upload_name(upload: UploadFile) -> str:
    """The client's file name without any folders (it is echoed back and kept as source_path)."""
    raw = upload.filename or "upload"
    name = PureWindowsPath(PurePosixPath(raw).name).name.strip()
    return (name or "upload")[:200]


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


#: The box form field: four non-negative numbers 'x,y,w,h' in pixels. The OpenAPI document
#: declares this very pattern and `parse_box` enforces it, so both refuse the same strings
#: (at most 6 digits before the point: every value is a finite pixel coordinate).
_NUMBER = r" *[0-9]{1,6}(\.[0-9]{1,4})? *"
BOX_PATTERN = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"
#: ISO 8601 date, optionally with a time and an offset (EVAL.md). A local time without an offset
#: is the camera's clock and is kept as given. `format` tells generated clients and the fuzzer
#: that the digits must also be a real date and time (2024-02-30 matches the pattern, is refused).
TIMESTAMP_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                     r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$")
TIMESTAMP_FORMAT = "date-time-local"
#: The crop form field: the photo is (not) already a crop of the animal; absent or empty = detected.
CROP_PATTERN = r"^(true|false|1|0)$"


def _fullmatch(pattern: str, value: str) -> bool:
    # The document's '^...$' is an ECMA-262 pattern: '$' is the very end (Python's '$' would
    # also allow a final newline), so match the whole string.
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def parse_box(raw: str | None) -> tuple[float, float, float, float] | None:
    """'x,y,w,h' in pixels -> tuple; absent or empty -> None (whole image); anything else -> 422.
    Whether the box lies inside the photo is decided when the photo is cropped (422 there)."""
    if raw is None or raw == "":
        return None
    if not _fullmatch(BOX_PATTERN, raw):
        raise _unprocessable(f"box must be four non-negative numbers 'x,y,w,h' in pixels, got {raw[:80]!r}")
    x, y, w, h = (float(p) for p in raw.split(","))
    return (x, y, w, h)


def parse_crop(raw: str | None) -> bool | None:
    """'true'/'1' or 'false'/'0' -> bool; absent or empty -> None (detected); else 422. The form
    accepts only what CROP_PATTERN (the OpenAPI schema) says; the CSV column's parser reads it."""
    if raw is not None and raw != "" and not _fullmatch(CROP_PATTERN, raw):
        raise _unprocessable(f"crop must be true or false (or empty: detected), got {raw[:80]!r}")
    return crops.parse_crop(raw)


def parse_timestamp(raw: str | None) -> str | None:
    """ISO 8601 (EVAL.md) or 422; returned as given so local camera time is not shifted."""
    if raw is None or raw == "":
        return None
    valid = _fullmatch(TIMESTAMP_PATTERN, raw)
    if valid:
        try:
            datetime.fromisoformat(raw)
        except ValueError:
            valid = False
    if not valid:
        raise _unprocessable(f"timestamp must be ISO 8601 like 2024-06-01T21:14:05, got {raw[:80]!r}")
    return raw


@dataclass(frozen=True)
class ImageMeta:
    """What the uploader says about a photo (all optional)."""

    viewpoint: str = "unknown"
    box: tuple[float, float, float, float] | None = None
    sighting: str | None = None
    station: str | None = None
    timestamp: str | None = None
    lat: float | None = None
    lon: float | None = None
    crop: bool | None = None  # already a crop of the animal; None: detected

    def query_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Pipeline.load_query`."""
        return {"viewpoint": self.viewpoint, "box": self.box, "sighting": self.sighting, "station": self.station,
                "timestamp": self.timestamp, "lat": self.lat, "lon": self.lon, "crop": self.crop}


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# The optional form fields are typed without `| None`: multipart has no null, so the document
# must not declare one (a client would send the text "null"). An absent or empty field is the
# default (None), which FastAPI does not validate.
def image_meta(
    viewpoint: Annotated[Viewpoint, Form(description="flank shown; left and right are only compared with their own side")]
    = Viewpoint.unknown,
    box: Annotated[str, Form(description="the animal's box 'x,y,w,h' in pixels; absent or empty = whole image",
                             examples=["120,80,640,400"], json_schema_extra={"pattern": BOX_PATTERN})] = None,
    sighting: Annotated[str, Form(max_length=200, description="id of one encounter (burst, video, visit)")] = None,
    station: Annotated[str, Form(max_length=200, description="camera-trap station id")] = None,
    timestamp: Annotated[str, Form(description="ISO 8601 local capture time; default: the photo's EXIF",
                                   examples=["2024-06-01T21:14:05"],
                                   json_schema_extra={"pattern": TIMESTAMP_PATTERN, "format": TIMESTAMP_FORMAT})]
    = None,
    lat: Annotated[float, Form(ge=-90, le=90, description="latitude in degrees (WGS 84)")] = None,
    lon: Annotated[float, Form(ge=-180, le=180, description="longitude in degrees (WGS 84)")] = None,
    crop: Annotated[str, Form(description="true: the photo is already a crop of the animal (all its keypoints "
                                          "kept, no scene check); false: a whole frame; absent or empty: detected",
                              examples=["true"], json_schema_extra={"pattern": CROP_PATTERN})] = None,
) -> ImageMeta:
    return ImageMeta(viewpoint=viewpoint.value, box=parse_box(box), sighting=_text(sighting), station=_text(station),
                     timestamp=parse_timestamp(timestamp), lat=lat, lon=lon, crop=parse_crop(crop))


ImageMetaDep = Annotated[ImageMeta, Depends(image_meta)]
