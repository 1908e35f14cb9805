"""Catalogue curation over HTTP (admin role): merge, rename/sex/notes, move an image, best photo, undo.

Individuals are addressed by numeric id only. Every change answers with its curation record;
`POST /v1/curation/{id}/undo` restores exactly what it changed (409 when that is no longer
possible because something changed since).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from reid import curation
from service.deps import AdminDep, PipelineDep, Role, RowId, require_role, run_model
from service.review_schemas import BestPhotoIn, CurationOut, IndividualPatch, MergeIn, MoveIn
from service.schemas import MAX_ROW_ID, ErrorOut

router = APIRouter(prefix="/v1", tags=["curation"], dependencies=[Depends(require_role(Role.viewer))])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such individual or image"},
    409: {"model": ErrorOut, "description": "conflicts with the catalogue as it is now (name taken, changed since, merged into itself)"},
}


@router.post("/individuals/{individual_id}/merge", response_model=CurationOut, responses=_ERRORS,
             summary="Merge this individual into another: its images, sightings and history follow")
async def merge(request: Request, individual_id: RowId, body: MergeIn, pipeline: PipelineDep,
                actor: AdminDep) -> CurationOut:
    if individual_id == body.into_id:
        # 409, not 422: each id is valid on its own (the document cannot relate a path to a body)
        raise HTTPException(status.HTTP_409_CONFLICT, detail="an individual cannot be merged into itself")
    rec = await run_model(request, lambda: curation.merge(pipeline, individual_id, body.into_id, actor=actor.name))
    return CurationOut.of(rec)


@router.patch("/individuals/{individual_id}", response_model=CurationOut, responses=_ERRORS,
              summary="Rename, set sex or notes (only the fields sent change)")
def update(individual_id: RowId, body: IndividualPatch, pipeline: PipelineDep, actor: AdminDep) -> CurationOut:
    return CurationOut.of(curation.update_individual(pipeline.catalog, individual_id, name=body.name, sex=body.sex,
                                                     notes=body.notes, actor=actor.name))


@router.put("/individuals/{individual_id}/best-photo", response_model=CurationOut, responses=_ERRORS,
            summary="Mark one of its images as the best photo of a flank")
def best_photo(individual_id: RowId, body: BestPhotoIn, pipeline: PipelineDep, actor: AdminDep) -> CurationOut:
    return CurationOut.of(curation.set_best_photo(pipeline.catalog, individual_id, body.image_id,
                                                  viewpoint=body.viewpoint, actor=actor.name))


@router.post("/images/{image_id}/move", response_model=CurationOut, responses=_ERRORS,
             summary="File an image under another individual (split)")
async def move(request: Request, image_id: RowId, body: MoveIn, pipeline: PipelineDep, actor: AdminDep) -> CurationOut:
    rec = await run_model(request, lambda: curation.move_image(pipeline, image_id, body.individual_id,
                                                               actor=actor.name))
    return CurationOut.of(rec)


@router.get("/curation", response_model=list[CurationOut], summary="Recent curation changes, newest first")
def list_curation(pipeline: PipelineDep,
                  individual_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[CurationOut]:
    return [CurationOut.of(r) for r in curation.history(pipeline.catalog, individual_id, limit)]


@router.post("/curation/{record_id}/undo", response_model=CurationOut, responses=_ERRORS,
             summary="Undo one curation change exactly")
async def undo(request: Request, record_id: RowId, pipeline: PipelineDep, actor: AdminDep) -> CurationOut:
    return CurationOut.of(await run_model(request, lambda: curation.undo(pipeline, record_id, actor=actor.name)))
