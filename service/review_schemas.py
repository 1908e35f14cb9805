"""Request and response bodies of the review and curation routes (the wire contract).

Locations (station, camera, coordinates, the file name as given, which may hold a server
path) are left out for callers whose role may not see them (service.deps.may_see_locations).
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reid.curation import CurationRecord
from reid.review import ReviewItem
from service.schemas import image_file_url


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
                  decisions=[DecisionOut(**{k: d[k] for k in DecisionOut.model_fields}) for d in item.decisions])
        if locations:
            out.station, out.camera, out.lat, out.lon = item.station, item.camera, item.lat, item.lon
        return out


class ReviewListOut(BaseModel):
    total: int = Field(description="items matching the filters")
    counts: dict[str, int] = Field(description="items per status in the whole queue")
    items: list[ReviewItemOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["confirm", "new", "not_identifiable", "skip"]
    individual_id: int | None = Field(default=None, description="confirm: the individual's id")
    name: str | None = Field(default=None, max_length=200,
                             description="confirm: an exact existing name (digits are a name, never an id); "
                                         "new: the new individual's name")
    viewpoint: Literal["left", "right", "front", "back", "unknown"] | None = None
    version: int | None = Field(default=None, description="the item's version as loaded (409 if it changed)")

    @model_validator(mode="after")
    def _complete(self) -> DecisionIn:
        if self.action == "confirm" and (self.individual_id is None) == (self.name is None):
            raise ValueError("confirm needs exactly one of individual_id or name")
        if self.action == "new" and not (self.name or "").strip():
            raise ValueError("new needs the new individual's name")
        return self


class NewIndividualIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[int] = Field(min_length=1, max_length=500)
    name: str = Field(min_length=1, max_length=200)


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: float = Field(default=0, ge=0)


class ArchiveOut(BaseModel):
    archived: int
    purged: int
    retention_days: int


# -- curation ------------------------------------------------------------------------------------------
class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into_id: int = Field(description="the individual that keeps its id and receives everything")


class IndividualPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    sex: Literal["female", "male", "unknown"] | None = None
    notes: str | None = Field(default=None, max_length=5000)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    individual_id: int


class BestPhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_id: int
    viewpoint: Literal["left", "right", "front", "back", "unknown"] | None = None


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
