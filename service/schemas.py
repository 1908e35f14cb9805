"""Pydantic models for every request and response body of the HTTP API.

They are the API's contract (and its OpenAPI schema at /docs): the library's dataclasses
are converted here, so a change inside `reid` does not silently change the wire format.
Internal details (the stored file path inside the data directory) are not exposed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from reid.catalog import ImageRecord, Individual
from reid.identify import Candidate, Identification
from reid.names import NAME_PATTERN, InvalidNameError, validate_name


class Viewpoint(StrEnum):
    """Which side of the animal the photo shows; left and right flanks carry different rosettes."""

    left = "left"
    right = "right"
    front = "front"
    back = "back"
    unknown = "unknown"


def image_file_url(image_id: int) -> str:
    return f"/v1/images/{image_id}/file"


class ErrorOut(BaseModel):
    """Every error is JSON with a sentence meant for a person."""

    detail: str = Field(examples=["upload.jpg: the image file is truncated (incomplete download or copy?)"])


# -- identify -----------------------------------------------------------------------------------------
class CandidateOut(BaseModel):
    rank: int = Field(ge=1, description="1 = best")
    individual_id: int
    identity: str = Field(description="the individual's name")
    score: float = Field(ge=0.0, le=1.0, description="calibrated P(query shows this individual)")
    cosine: float = Field(description="best embedding similarity to one of its gallery images")
    image_id: int = Field(description="that gallery image: the evidence to look at")
    viewpoint: str = Field(description="flank of that gallery image")
    inliers: int = Field(description="keypoint matches with that image verified by geometry")
    local_score: float = Field(description="their one-vs-many distinctiveness (0: not verified)")
    image_url: str = Field(description="where to fetch that gallery image")

    @classmethod
    def of(cls, c: Candidate) -> CandidateOut:
        return cls(rank=c.rank, individual_id=c.individual_id, identity=c.identity, score=c.score,
                   cosine=c.cosine, image_id=c.image_id, viewpoint=c.viewpoint, inliers=c.inliers,
                   local_score=c.local_score, image_url=image_file_url(c.image_id))


class Timing(BaseModel):
    """Milliseconds spent in each step of this request (server side)."""

    read: float = Field(description="receiving the upload")
    decode: float = Field(description="decoding and cropping the image")
    identify: float = Field(description="embedding, search and scoring")
    total: float


class IdentifyOut(BaseModel):
    name: str = Field(description="the uploaded file's name")
    decision: Literal["match", "new", "review"] = Field(
        description="match: rank 1 accepted; new: no known individual fits; review: a person should look")
    viewpoint: Viewpoint
    sighting: str | None = None
    candidates: list[CandidateOut] = Field(description="sorted by score, best first")
    flank_note: str | None = Field(
        default=None, description="why some known animals cannot be confirmed from this photo: they have no "
                                  "enrolled photo of its flank (null: nothing missing, or a match)",
        examples=["no right-flank photo of Tau Sheri enrolled: cannot confirm"])
    crop: bool | None = Field(
        default=None, description="true: matched as a crop of the animal (all its keypoints, no scene check), "
                                  "as the crop field said or as detected; null: no keypoint matching ran")
    model_id: str
    calibrated: bool = Field(description="false: the model ships no calibration; scores are rescaled cosines")
    timing_ms: Timing

    @classmethod
    def of(cls, res: Identification, *, model_id: str, calibrated: bool, timing: Timing) -> IdentifyOut:
        return cls(name=res.name, decision=res.decision, viewpoint=Viewpoint(res.viewpoint), sighting=res.sighting,
                   candidates=[CandidateOut.of(c) for c in res.candidates], flank_note=res.flank_note,
                   crop=res.crop, model_id=model_id,
                   calibrated=calibrated, timing_ms=timing)


class SightingOut(BaseModel):
    """Several photos of one encounter, identified jointly: one verdict for the sighting."""

    sighting: str = Field(description="the sighting id given, or one made up for this request")
    decision: Literal["match", "new", "review"] = Field(description="the verdict of the best-supported photo")
    candidates: list[CandidateOut] = Field(description="that photo's pooled candidates, best first")
    flank_note: str | None = Field(default=None, description="that photo's flank note (see /v1/identify)")
    images: list[IdentifyOut] = Field(description="every photo's own answer (evidence pooled over the sighting)")


def not_bool(value: object) -> object:
    """JSON true/false is no number (pydantic would read true as 1)."""
    if isinstance(value, bool):
        raise ValueError("input should be an integer, not a boolean")
    return value


# -- individuals and images ------------------------------------------------------------------------------
def _valid_name(value: str) -> str:
    try:
        return validate_name(value)
    except InvalidNameError as exc:
        raise ValueError(str(exc)) from None  # pydantic turns it into a 422 naming the field


#: An individual's name: trimmed, no control characters or '/', at most MAX_NAME_LENGTH characters.
#: The document's `pattern` is reid.names.NAME_PATTERN, the very rule validate_name enforces.
IndividualName = Annotated[str, Field(examples=["Tau Sheri", "7"], json_schema_extra={"pattern": NAME_PATTERN}),
                           AfterValidator(_valid_name)]
#: The largest row id the API takes: SQLite holds 64-bit integers, but JSON readers (and JSON-schema
#: validators) hold numbers as doubles, exact only up to 2**53 - 1; 2**63 - 1 cannot be written
#: as a bound that both sides read alike (the fuzzer sent 9223372036854775999 as "<= 2**63 - 1").
MAX_ROW_ID = 2**53 - 1
#: A catalogue row id in a body (larger ones would overflow SQLite: a 500).
RowIdField = Annotated[int, Field(ge=1, le=MAX_ROW_ID), BeforeValidator(not_bool)]


class IndividualCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: IndividualName
    sex: str | None = Field(default=None, max_length=50, examples=["male"])
    notes: str | None = Field(default=None, max_length=5000)


class IndividualOut(BaseModel):
    id: int
    name: str
    sex: str | None
    notes: str | None
    created_at: str
    image_count: int

    @classmethod
    def of(cls, ind: Individual) -> IndividualOut:
        return cls(id=ind.id, name=ind.name, sex=ind.sex, notes=ind.notes, created_at=ind.created_at,
                   image_count=ind.image_count)


class ImageOut(BaseModel):
    id: int
    sha256: str
    box: list[float] | None = Field(description="x, y, w, h of the animal in pixels; null = whole image")
    individual_id: int | None
    individual: str | None
    viewpoint: str
    sighting: str | None
    station: str | None
    timestamp: str | None
    lat: float | None = Field(description="null unless the caller's role may see locations (REID_LOCATION_ROLE)")
    lon: float | None = Field(description="null unless the caller's role may see locations")
    source_path: str | None = Field(description="file name as uploaded or enrolled; null unless the caller may "
                                                "see locations")
    width: int | None
    height: int | None
    created_at: str
    file_url: str

    @classmethod
    def of(cls, rec: ImageRecord, *, locations: bool = False) -> ImageOut:
        """`locations`: may the caller see coordinates and source paths (service.deps.may_see_locations)?
        Without it (the default) they are null: where an endangered cat was photographed is
        poaching-sensitive."""
        box = rec.box_tuple
        return cls(id=rec.id, sha256=rec.sha256, box=list(box) if box else None, individual_id=rec.individual_id,
                   individual=rec.individual, viewpoint=rec.viewpoint, sighting=rec.sighting, station=rec.station,
                   timestamp=rec.timestamp, lat=rec.lat if locations else None, lon=rec.lon if locations else None,
                   source_path=rec.source_path if locations else None,
                   width=rec.width, height=rec.height, created_at=rec.created_at, file_url=image_file_url(rec.id))


class IndividualDetail(IndividualOut):
    images: list[ImageOut]


class EnrollOut(BaseModel):
    created: bool = Field(description="false: this exact file (and box) was already enrolled; nothing was added")
    image: ImageOut


# -- health ---------------------------------------------------------------------------------------------
class IndexStatus(BaseModel):
    ok: bool
    index_count: int
    catalog_count: int
    message: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the search index disagrees with the catalogue")
    model_id: str
    embed_backend: str
    calibrated: bool
    calibration: str = Field(description="what the calibration in use was fitted on")
    calibration_source: str = Field(
        description="which calibration: 'project' (this data dir's own, from `reid calibrate`), 'file' "
                    "(REID_CALIBRATION), 'shipped' (beside the model, fitted on synthetic leopards: refit it "
                    "with `reid calibrate` once individuals are confirmed) or 'none'")
    counts: dict[str, int]
    index: IndexStatus


class HealthPublicOut(BaseModel):
    """What /healthz tells a caller without a key once keys are needed: only that it is up."""

    status: Literal["ok"]
    detail: str = "send a key (Authorization: Bearer <key>) for the catalogue's status"
