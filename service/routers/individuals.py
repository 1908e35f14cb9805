"""The catalogue's individuals: list, create, show, and enroll photos of one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile, status

from reid.catalog import ImageRecord
from reid.errors import ReidError
from service.deps import ActorDep, ImageMetaDep, PipelineDep, read_upload, run_model, upload_name
from service.schemas import EnrollOut, ErrorOut, ImageOut, IndividualCreate, IndividualDetail, IndividualOut

router = APIRouter(prefix="/v1/individuals", tags=["individuals"])

_NOT_FOUND = {404: {"model": ErrorOut, "description": "no such individual"}}
_AUTH = {401: {"model": ErrorOut, "description": "missing or wrong API token (when REID_API_TOKEN is set)"}}


@router.get("", response_model=list[IndividualOut], summary="All known individuals with image counts")
def list_individuals(pipeline: PipelineDep) -> list[IndividualOut]:
    return [IndividualOut.of(ind) for ind in pipeline.catalog.list_individuals()]


@router.post("", response_model=IndividualOut, status_code=status.HTTP_201_CREATED,
             summary="Add a new individual (no photos yet)",
             responses={409: {"model": ErrorOut, "description": "the name is taken"}, **_AUTH})
def create_individual(body: IndividualCreate, pipeline: PipelineDep, actor: ActorDep) -> IndividualOut:
    catalog = pipeline.catalog
    try:
        ind = catalog.create_individual(body.name, sex=body.sex, notes=body.notes, actor=actor)
    except ReidError as exc:
        # Ask the catalogue rather than parse the message: is the name really taken?
        if any(i.name == body.name for i in catalog.list_individuals()):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        raise
    return IndividualOut.of(ind)


@router.get("/{individual}", response_model=IndividualDetail, responses=_NOT_FOUND,
            summary="One individual (numeric id or exact name) with its images' metadata")
def get_individual(individual: str, pipeline: PipelineDep) -> IndividualDetail:
    ind = pipeline.catalog.get_individual(individual)  # NotFoundError -> 404 (app handler)
    images = [ImageOut.of(rec) for rec in pipeline.catalog.images_of(ind.id)]
    return IndividualDetail(**IndividualOut.of(ind).model_dump(), images=images)


@router.post(
    "/{individual}/images",
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
    individual: str,
    pipeline: PipelineDep,
    actor: ActorDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or WebP photo")],
    meta: ImageMetaDep,
) -> EnrollOut:
    data = await read_upload(image, pipeline.settings.max_upload_bytes)
    name = upload_name(image)

    def work() -> tuple[ImageRecord, bool]:
        ind = pipeline.catalog.get_individual(individual)  # 404 before any decoding work
        query = pipeline.load_query(data, name=name, keep_bytes=True, **meta.query_kwargs())
        existing = pipeline.catalog.find_image(query.sha256 or "", meta.box)
        if existing is not None and existing.individual_id not in (None, ind.id):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"this photo is already enrolled as {existing.individual!r} (image {existing.id})",
            )
        try:
            ((record, created),) = pipeline.enroll(ind.name, [query], actor=actor)
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
    return EnrollOut(created=created, image=ImageOut.of(record))
