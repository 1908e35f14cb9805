"""The catalogue's individuals: list, create, show, and enroll photos of one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile, status

from reid.catalog import ImageRecord
from reid.errors import NotFoundError, ReidError
from service.deps import (
    AdminDep,
    AuthDep,
    ImageMetaDep,
    PipelineDep,
    Role,
    SettingsDep,
    may_see_locations,
    pixel_budget,
    read_upload,
    require_role,
    run_model,
    upload_name,
)
from service.schemas import EnrollOut, ErrorOut, ImageOut, IndividualCreate, IndividualDetail, IndividualOut

# Individuals are addressed by their integer id in paths; a name (which may be "7") only
# where it is explicitly a name: ?name=, the JSON body, a CSV's identity column.
router = APIRouter(prefix="/v1/individuals", tags=["individuals"], dependencies=[Depends(require_role(Role.viewer))])

_NOT_FOUND = {404: {"model": ErrorOut, "description": "no such individual"}}
_AUTH = {401: {"model": ErrorOut, "description": "no key, or a wrong one (when keys or REID_API_TOKEN exist)"},
         403: {"model": ErrorOut, "description": "the key's role may not do this"}}


@router.get("", response_model=list[IndividualOut], summary="All known individuals with image counts",
            description="With `name`: the individual of exactly that name (a list of one), or an empty list.")
def list_individuals(
    pipeline: PipelineDep,
    name: Annotated[str | None, Query(max_length=1000, description="exact name, e.g. 'Tau Sheri' or '7'")] = None,
) -> list[IndividualOut]:
    if name is not None:
        try:
            return [IndividualOut.of(pipeline.catalog.individual_by_name(name.strip()))]
        except NotFoundError:
            return []
    return [IndividualOut.of(ind) for ind in pipeline.catalog.list_individuals()]


@router.post("", response_model=IndividualOut, status_code=status.HTTP_201_CREATED,
             summary="Add a new individual (no photos yet)",
             responses={409: {"model": ErrorOut, "description": "the name is taken"}, **_AUTH})
def create_individual(body: IndividualCreate, pipeline: PipelineDep, actor: AdminDep) -> IndividualOut:
    catalog = pipeline.catalog
    try:
        ind = catalog.create_individual(body.name, sex=body.sex, notes=body.notes, actor=actor.name)
    except ReidError as exc:
        # Ask the catalogue rather than parse the message: is the name really taken?
        if any(i.name == body.name for i in catalog.list_individuals()):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        raise
    return IndividualOut.of(ind)


@router.get("/{individual_id}", response_model=IndividualDetail, responses=_NOT_FOUND,
            summary="One individual (by id; find an id by name with ?name=) with its images' metadata",
            description="Coordinates and source paths are null unless the caller's role may see locations.")
def get_individual(individual_id: int, pipeline: PipelineDep, actor: AuthDep, settings: SettingsDep) -> IndividualDetail:
    ind = pipeline.catalog.individual_by_id(individual_id)  # NotFoundError -> 404 (app handler)
    locations = may_see_locations(actor, settings)
    images = [ImageOut.of(rec, locations=locations) for rec in pipeline.catalog.images_of(ind.id)]
    return IndividualDetail(**IndividualOut.of(ind).model_dump(), images=images)


@router.post(
    "/{individual_id}/images",
    response_model=EnrollOut,
    status_code=status.HTTP_201_CREATED,
    summary="Enroll a photo of this individual",
    description="201 with the new image record; 200 with created=false when this exact file (and box) "
                "is already enrolled for this individual; 409 when it is enrolled as another individual.",
    responses={200: {"model": EnrollOut, "description": "already enrolled; nothing added"},
               409: {"model": ErrorOut, "description": "the photo is enrolled as another individual"},
               413: {"model": ErrorOut}, **_NOT_FOUND, **_AUTH},
)
async def enroll_image(
    request: Request,
    response: Response,
    individual_id: int,
    pipeline: PipelineDep,
    actor: AdminDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or WebP photo")],
    meta: ImageMetaDep,
) -> EnrollOut:
    data = await read_upload(image, request.app.state.settings.max_upload_bytes)
    name = upload_name(image)

    def work() -> tuple[ImageRecord, bool]:
        ind = pipeline.catalog.individual_by_id(individual_id)  # 404 before any decoding work
        with pixel_budget(request) as budget:
            query = pipeline.load_query(data, name=name, keep_bytes=True, budget=budget, **meta.query_kwargs())
        existing = pipeline.catalog.find_image(query.sha256 or "", meta.box)
        if existing is not None and existing.individual_id not in (None, ind.id):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"this photo is already enrolled as {existing.individual!r} (image {existing.id})",
            )
        try:
            ((record, created),) = pipeline.enroll(ind.name, [query], actor=actor.name)
        except ReidError as exc:
            # A concurrent enrollment may have claimed the file for another individual meanwhile.
            again = pipeline.catalog.find_image(query.sha256 or "", meta.box)
            if again is not None and again.individual_id != ind.id:
                raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
            raise
        return record, created

    record, created = await run_model(request, work)
    if not created:
        response.status_code = status.HTTP_200_OK
    return EnrollOut(created=created, image=ImageOut.of(record, locations=may_see_locations(actor, request.app.state.settings)))
