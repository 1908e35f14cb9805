"""Request and response bodies of the review and curation routes (the wire contract).

Locations (station, camera, coordinates, the file name as given, which may hold a server
path) are left out for callers whose role may not see them (service.deps.may_see_locations).
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reid.curation import CurationRecord
from reid.review import ReviewItem
from service.schemas import MAX_ROW_ID, IndividualName, RowIdField, image_file_url, not_bool


class ReviewCandidateOut(BaseModel):
    rank: int
    individual_id: int
    identity: str = Field(description="the individual's name (now: a merged individual shows the one it joined)")
    probability: float
    image_id: int = Field(description="the gallery image that gave this candidate's evidence")
    viewpoint: str
    inliers: int
    image_url: str
    evidence_url: str = Field(description="PNG: the query beside that gallery image, matched spots joined")
    last_seen: str | None = Field(default=None, description="latest photo time of this individual")
    last_station: str | None = Field(default=None, description="its station (roles that may see locations)")


class DecisionOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    individual_id: int | None
    proposed_verdict: str | None
    proposed_individual_id: int | None
    proposed_probability: float | None
    undone_at: str | None


class ReviewPhotoOut(BaseModel):
    """One photo of a multi-photo item (a season's putative new individual, or a paired-camera
    flank link): a decision on the item enrolls every one, each with its own flank."""

    position: int
    file_name: str
    photo_url: str
    box: str = Field(description="x,y,w,h in pixels of the stored photo; empty: the whole photo")
    viewpoint: str
    sighting: str | None
    timestamp: str | None
    station: str | None = None
    camera: str | None = None


class ReviewItemOut(BaseModel):
    id: int
    status: str = Field(description="pending, auto (an auto-accepted match), decided or archived")
    version: int = Field(description="send it back with a decision to be told (409) if the item changed")
    file_name: str
    photo_url: str
    viewpoint: str
    sighting: str | None
    timestamp: str | None
    station: str | None = None
    camera: str | None = None
    lat: float | None = None
    lon: float | None = None
    verdict: str = Field(description="the machine's verdict: match, new or review")
    model_id: str
    calibration: str | None
    candidates: list[ReviewCandidateOut]
    action: str | None = Field(description="the standing decision: confirm, new, not_identifiable (skip keeps it pending)")
    individual_id: int | None
    individual: str | None
    image_id: int | None = Field(description="the catalogue image the confirmation enrolled")
    skips: int
    decided_at: str | None
    decided_by: str | None
    decisions: list[DecisionOut] = []
    photos: list[ReviewPhotoOut] = Field(
        default=[], description="a multi-photo item's photos (empty for a one-photo item): all enrolled by a decision")

    @classmethod
    def of(cls, item: ReviewItem, *, locations: bool, last_seen: dict[int, tuple[str | None, str | None]]
           ) -> ReviewItemOut:
        cands = []
        for c in item.candidates:
            seen, station = last_seen.get(c.individual_id, (None, None))
            cands.append(ReviewCandidateOut(
                rank=c.rank, individual_id=c.individual_id, identity=c.identity, probability=c.probability,
                image_id=c.image_id, viewpoint=c.viewpoint, inliers=c.inliers, image_url=image_file_url(c.image_id),
                evidence_url=f"/v1/reviews/{item.id}/evidence?individual_id={c.individual_id}",
                last_seen=seen, last_station=station if locations else None))
        name = item.file_name if locations else PureWindowsPath(PurePosixPath(item.file_name).name).name
        out = cls(id=item.id, status=item.status, version=item.version, file_name=name,
                  photo_url=f"/v1/reviews/{item.id}/photo", viewpoint=item.viewpoint, sighting=item.sighting,
                  timestamp=item.timestamp, verdict=item.verdict, model_id=item.model_id,
                  calibration=item.calibration, candidates=cands, action=item.action,
                  individual_id=item.individual_id, individual=item.individual, image_id=item.image_id,
                  skips=item.skips, decided_at=item.decided_at, decided_by=item.decided_by,
                  decisions=[DecisionOut(**{k: d[k] for k in DecisionOut.model_fields}) for d in item.decisions],
                  photos=[ReviewPhotoOut(
                      position=p.position, photo_url=f"/v1/reviews/{item.id}/photos/{p.position}", box=p.box,
                      file_name=p.file_name if locations else PureWindowsPath(PurePosixPath(p.file_name).name).name,
                      viewpoint=p.viewpoint, sighting=p.sighting, timestamp=p.timestamp,
                      station=p.station if locations else None, camera=p.camera if locations else None)
                      for p in item.photos])
        if locations:
            out.station, out.camera, out.lat, out.lon = item.station, item.camera, item.lat, item.lon
        return out


class ReviewListOut(BaseModel):
    total: int = Field(description="items matching the filters")
    counts: dict[str, int] = Field(description="items per status in the whole queue")
    items: list[ReviewItemOut]


ViewpointIn = Literal["left", "right", "front", "back", "unknown"]
#: The item's version as loaded: a decision on an item changed since is refused (409).
VersionIn = Annotated[int, Field(ge=0, le=MAX_ROW_ID, description="the item's version as loaded (409 if it changed)"), BeforeValidator(not_bool)]
#: Archive horizon in days: at most a century (a larger one would overflow the date arithmetic).
MAX_DAYS = 36500


# Optional fields below have the default None but a non-null type: absent means "not given",
# and the document does not invite a null the server would ignore or refuse.
class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    viewpoint: ViewpointIn = None  # type: ignore[assignment]
    version: VersionIn = None  # type: ignore[assignment]


class ConfirmDecision(_Decision):
    """Confirm the item shows an existing individual, given by id or by exact name (exactly one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["individual_id"]}, {"required": ["name"]}]})

    action: Literal["confirm"]
    individual_id: RowIdField = Field(default=None, description="the individual's id")  # type: ignore[assignment]
    name: IndividualName = Field(default=None, description="an exact existing name (digits are a name, never an id)")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_of(self) -> ConfirmDecision:
        if (self.individual_id is None) == (self.name is None):
            raise ValueError("confirm needs exactly one of individual_id or name")
        return self


class NewDecision(_Decision):
    """The item shows an individual not in the catalogue yet: enrol it under `name`."""

    action: Literal["new"]
    name: IndividualName = Field(description="the new individual's name")  # type: ignore[assignment]


class OtherDecision(_Decision):
    """not_identifiable: no individual can be told from this photo; skip: decide later."""

    action: Literal["not_identifiable", "skip"]


#: A decision body; `action` says which fields it needs, and the document says so too.
DecisionIn = Annotated[ConfirmDecision | NewDecision | OtherDecision, Field(discriminator="action")]


class NewIndividualIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[RowIdField] = Field(min_length=1, max_length=500)
    name: IndividualName


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: float = Field(default=0, ge=0, le=MAX_DAYS, strict=True)  # strict: false is no number


class ArchiveOut(BaseModel):
    archived: int
    purged: int
    retention_days: int


# -- curation ------------------------------------------------------------------------------------------
class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into_id: RowIdField = Field(description="the individual that keeps its id and receives everything")


class IndividualPatch(BaseModel):
    """Only the fields sent change; at least one must be sent (the document says so: minProperties)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: IndividualName = None  # type: ignore[assignment]
    sex: Literal["female", "male", "unknown"] = None  # type: ignore[assignment]
    notes: str = Field(default=None, max_length=5000)  # type: ignore[assignment]


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    individual_id: RowIdField


class BestPhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_id: RowIdField
    viewpoint: ViewpointIn = None  # type: ignore[assignment]


class CurationOut(BaseModel):
    id: int = Field(description="POST /v1/curation/{id}/undo restores exactly what this changed")
    at: str
    actor: str
    action: str
    individual_id: int | None
    target_id: int | None
    image_id: int | None
    undone_at: str | None
    undone_by: str | None

    @classmethod
    def of(cls, rec: CurationRecord) -> CurationOut:
        return cls(id=rec.id, at=rec.at, actor=rec.actor, action=rec.action, individual_id=rec.individual_id,
                   target_id=rec.target_id, image_id=rec.image_id, undone_at=rec.undone_at, undone_by=rec.undone_by)
