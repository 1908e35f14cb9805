"""Route dependencies: the shared pipeline, token auth, bounded upload reading, image form fields.

Everything a route needs from the request that is not the route's own logic lives here,
so each router reads as what it does: parse, call the pipeline, convert the result.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Form, HTTPException, Request, UploadFile, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reid.identify import Pipeline
from reid.settings import Settings
from service.schemas import Viewpoint

T = TypeVar("T")

#: Upload chunk size: small enough that an oversize upload is refused after at most
#: one chunk past the limit, large enough that a 10 MB photo is a handful of reads.
UPLOAD_CHUNK = 256 * 1024


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description="a key (`reid keys add`) or REID_API_TOKEN, when keys exist")


class Role(IntEnum):
    """What a caller may do; each role may do everything the roles below it may."""

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


def authenticate(settings: SettingsDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The caller's identity. Laptop mode (no token configured): everyone on this machine is admin.

    The one place that turns a request into an `Actor`; keys, roles and web sessions plug in here.
    """
    if not settings.api_token:
        return Actor("local", Role.admin)
    given = credentials.credentials if credentials is not None else ""
    # compare_digest: the check takes the same time whatever prefix of the token is right
    if given and secrets.compare_digest(given.encode(), settings.api_token.encode()):
        return Actor("api-token", Role.admin)
    return Actor("anonymous", Role.viewer)


AuthDep = Annotated[Actor, Depends(authenticate)]


def require_role(role: Role) -> Callable[[Actor], Actor]:
    """A dependency that lets the request through only for callers with at least `role`."""

    def dependency(actor: AuthDep) -> Actor:
        if actor.may(role):
            return actor
        if actor.name == "anonymous":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="this route needs the header 'Authorization: Bearer <key>' with a key of the "
                       f"{role.name} role or above",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"this route needs the {role.name} role; {actor.name!r} is {actor.role.name}")

    return dependency


ViewerDep = Annotated[Actor, Depends(require_role(Role.viewer))]
ReviewerDep = Annotated[Actor, Depends(require_role(Role.reviewer))]
AdminDep = Annotated[Actor, Depends(require_role(Role.admin))]


def may_see_locations(actor: Actor, settings: Settings) -> bool:
    """Coordinates, exact stations, server paths and GPS EXIF are poaching-sensitive: only
    roles allowed to see locations get them (pages, JSON, image files, reports, exports alike)."""
    return actor.may(Role.reviewer)


def require_token(actor: AdminDep) -> str:
    """Write routes (enroll, create): the admin role; returns the actor name for the audit trail."""
    return actor.name


ActorDep = Annotated[str, Depends(require_token)]


async def run_model(request: Request, fn: Callable[[], T]) -> T:
    """Run CPU-bound work (decode, embed, enroll) in a worker thread, never on the event loop.

    A dedicated limiter bounds how many run at once: each ONNX/torch call already uses
    every core, so more parallel calls only add memory (decoded photos) and contention.
    """
    return await anyio.to_thread.run_sync(fn, limiter=request.app.state.model_limiter)


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


def parse_box(raw: str | None) -> tuple[float, float, float, float] | None:
    """'x,y,w,h' in pixels -> tuple; empty -> None (whole image); anything else -> 422."""
    if raw is None or not raw.strip():
        return None
    parts = raw.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise _unprocessable(f"box must be four numbers 'x,y,w,h' in pixels, got {raw!r}")
    x, y, w, h = values
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise _unprocessable(f"box {raw!r}: x and y must be >= 0, width and height > 0")
    return (x, y, w, h)


def parse_timestamp(raw: str | None) -> str | None:
    """ISO 8601 (EVAL.md) or 422; returned as given so local camera time is not shifted."""
    if raw is None or not raw.strip():
        return None
    try:
        datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _unprocessable(f"timestamp must be ISO 8601 like 2024-06-01T21:14:05, got {raw!r}") from None
    return raw.strip()


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

    def query_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Pipeline.load_query`."""
        return {"viewpoint": self.viewpoint, "box": self.box, "sighting": self.sighting, "station": self.station,
                "timestamp": self.timestamp, "lat": self.lat, "lon": self.lon}


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def image_meta(
    viewpoint: Annotated[Viewpoint, Form(description="flank shown; left and right are only compared with their own side")]
    = Viewpoint.unknown,
    box: Annotated[str | None, Form(description="the animal's box 'x,y,w,h' in pixels; empty = whole image",
                                    examples=["120,80,640,400"])] = None,
    sighting: Annotated[str | None, Form(max_length=200, description="id of one encounter (burst, video, visit)")]
    = None,
    station: Annotated[str | None, Form(max_length=200, description="camera-trap station id")] = None,
    timestamp: Annotated[str | None, Form(description="ISO 8601 local capture time; default: the photo's EXIF")]
    = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
) -> ImageMeta:
    return ImageMeta(viewpoint=viewpoint.value, box=parse_box(box), sighting=_text(sighting), station=_text(station),
                     timestamp=parse_timestamp(timestamp), lat=lat, lon=lon)


ImageMetaDep = Annotated[ImageMeta, Depends(image_meta)]
