"""Exports (zip downloads) and the live season report, for roles that may see locations.

Both reveal where the leopards are: station coordinates, camera sites, dates. The one rule
for who may see that is `service.deps.may_see_locations`; everyone else gets 401/403.
Over HTTP they cover the catalogue (confirmed identifications); season runs are exported
from the command line (`reid export ... --season RESULTS_DIR`), where their folders are.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from pydantic import BeforeValidator

from reid.errors import ConflictError, ReidError
from reid.exports import exporter_descriptions, list_exporters, run_export
from reid.exports.geo import CoordinatePolicy
from reid.exports.records import ExportOptions, load_export_data
from reid.exports.report import render_report
from service.deps import Actor, AuthDep, PipelineDep, Role, SettingsDep, may_see_locations, require_role
from service.schemas import ErrorOut

router = APIRouter(tags=["exports"], dependencies=[Depends(require_role(Role.viewer))])


def locations_actor(actor: AuthDep, settings: SettingsDep) -> Actor:
    if may_see_locations(actor, settings):
        return actor
    if actor.name == "anonymous":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"},
                            detail="exports and the report show station locations: sign in with a key of a role "
                                   "that may see them")
    raise HTTPException(status.HTTP_403_FORBIDDEN,
                        detail=f"exports and the report show station locations, which {actor.name!r} "
                               f"({actor.role.name}) may not see")


LocationsDep = Annotated[Actor, Depends(locations_actor)]


def _options(date_from: date | None, date_to: date | None, coordinates: str, utc_offset_minutes: int,
             **extra: object) -> ExportOptions:
    if date_from and date_to and date_to < date_from:
        raise ReidError(f"to={date_to} is before from={date_from}")
    return ExportOptions(date_from=date_from, date_to=date_to, coordinates=CoordinatePolicy.parse(coordinates),
                         utc_offset=timedelta(minutes=utc_offset_minutes), **extra)  # type: ignore[arg-type]


def _iso_day(value: object) -> object:
    """Only YYYY-MM-DD (the document's `format: date`); pydantic alone reads '0' as 1970-01-01."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


FromQ = Annotated[date | None, BeforeValidator(_iso_day), Query(alias="from", description="first day, YYYY-MM-DD")]
ToQ = Annotated[date | None, BeforeValidator(_iso_day), Query(alias="to", description="last day, YYYY-MM-DD")]
CoordinatesQ = Annotated[str, Query(description="exact, round:N (N = 0..6 decimals) or withhold",
                                    pattern="^(exact|withhold|round:[0-6])$")]
OffsetQ = Annotated[int, Query(ge=-14 * 60, le=14 * 60, description="cameras' local time minus UTC, minutes")]


@router.get("/v1/exports", summary="Export formats")
def formats(actor: LocationsDep) -> dict[str, str]:
    return exporter_descriptions()


@router.get("/v1/exports/{name}.zip", summary="Download an export of the catalogue as a zip",
            response_class=Response, responses={200: {"content": {"application/zip": {}}}, 409: {
                "model": ErrorOut, "description": "the catalogue holds nothing this format can be built from "
                                                  "(e.g. no station with coordinates for a capture history)"}})
async def download(name: Annotated[str, PathParam(json_schema_extra={"enum": list_exporters()},  # the document lists them
                                             description="an export format of GET /v1/exports")],
                   actor: LocationsDep, pipeline: PipelineDep, date_from: FromQ = None,
                   date_to: ToQ = None, coordinates: CoordinatesQ = "exact", utc_offset_minutes: OffsetQ = 300,
                   occasion_days: Annotated[int, Query(ge=1, le=366)] = 1,
                   flank: Annotated[str, Query(pattern="^(both|left|right)$")] = "both",
                   confirmed_only: bool = False) -> Response:
    if name not in list_exporters():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no export format {name!r}; one of {list_exporters()}")
    options = _options(date_from, date_to, coordinates, utc_offset_minutes, occasion_days=occasion_days,
                       flank=flank, confirmed_only=confirmed_only)

    def work() -> bytes:
        with tempfile.TemporaryDirectory(prefix="reid-export-") as tmp:
            try:
                result = run_export(name, pipeline.catalog, Path(tmp), options=options)
            except ReidError as exc:  # a valid request the catalogue as it is cannot answer: 409
                raise ConflictError(str(exc)) from None
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in result.files:
                    zf.write(path, f"{name}/{path.name}")
                zf.writestr(f"{name}/README.txt", "\n".join(
                    [f"reid export {name} ({options.coordinates} coordinates)", *result.warnings]) + "\n")
            return buf.getvalue()

    # Auth (router + LocationsDep) is settled before the catalogue is touched.
    body = await anyio.to_thread.run_sync(work)
    pipeline.catalog.audit("export", actor=actor.name, detail={"format": name, "coordinates": str(options.coordinates)})
    return Response(body, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="leopards-{name}.zip"'})


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
async def report(request: Request, actor: LocationsDep, pipeline: PipelineDep, date_from: FromQ = None,
                 date_to: ToQ = None, coordinates: CoordinatesQ = "exact") -> HTMLResponse:
    options = _options(date_from, date_to, coordinates, 300)

    def work() -> str:
        data = load_export_data(pipeline.catalog, options=options)
        return render_report(data, title="Season report (live catalogue)", nav=True)

    return HTMLResponse(await anyio.to_thread.run_sync(work))
