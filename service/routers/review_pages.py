"""Web pages of the review loop: /review (keyboard-first queue), /individuals, /individuals/{id}.

Server-rendered shells (Jinja2, service/templates); the queue and the curation forms talk to
/v1/reviews and the curation routes from review.js and individual.js (service/static).
Stations and times of day are shown only to roles that may see locations.
"""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from reid import curation, review
from reid.catalog import ImageRecord
from reid.model_versions import confirmations_since_model
from service.deps import AuthDep, PipelineDep, Role, SettingsDep, may_see_locations, require_role
from service.web import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_role(Role.viewer))])

FLANK_ORDER = ("left", "right", "front", "back", "unknown")


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, pipeline: PipelineDep, settings: SettingsDep, actor: AuthDep) -> HTMLResponse:
    locations = may_see_locations(actor, settings)
    return render(request, "review.html", actor=actor, counts=review.counts(pipeline.catalog),
                  stations=review.stations(pipeline.catalog) if locations else [], locations=locations,
                  may_decide=actor.may(Role.reviewer), may_retrain=actor.may(Role.admin),
                  since_trained=confirmations_since_model(settings.data_dir))


def thumbnails(images: list[ImageRecord], best: dict[str, int]) -> dict[str, ImageRecord]:
    """One photo per flank: the one marked best, else the first enrolled."""
    out: dict[str, ImageRecord] = {}
    for rec in images:
        if rec.viewpoint not in out or best.get(rec.viewpoint) == rec.id:
            out[rec.viewpoint] = rec
    return {vp: out[vp] for vp in FLANK_ORDER if vp in out}


@router.get("/individuals", response_class=HTMLResponse)
def individuals_page(request: Request, pipeline: PipelineDep, actor: AuthDep) -> HTMLResponse:
    catalog = pipeline.catalog
    rows = []
    for ind in catalog.list_individuals():
        rows.append({"individual": ind, "thumbs": thumbnails(catalog.images_of(ind.id),
                                                             curation.best_photos(catalog, ind.id))})
    return render(request, "individuals.html", actor=actor, rows=rows)


@router.get("/individuals/{individual_id}", response_class=HTMLResponse)
def individual_page(request: Request, individual_id: int, pipeline: PipelineDep, settings: SettingsDep,
                    actor: AuthDep) -> HTMLResponse:
    catalog = pipeline.catalog
    ind = catalog.individual_by_id(individual_id)  # 404 JSON for an unknown id
    images = catalog.images_of(ind.id)
    by_flank: dict[str, list[ImageRecord]] = defaultdict(list)
    for rec in images:
        by_flank[rec.viewpoint].append(rec)
    locations = may_see_locations(actor, settings)
    timeline = sorted((rec for rec in images if rec.timestamp), key=lambda r: r.timestamp or "")
    stations = sorted({rec.station for rec in images if rec.station}) if locations else []
    return render(request, "individual.html", actor=actor, individual=ind,
                  flanks=[(vp, by_flank[vp]) for vp in FLANK_ORDER if vp in by_flank],
                  best=curation.best_photos(catalog, ind.id), timeline=timeline, stations=stations,
                  locations=locations, others=[i for i in catalog.list_individuals() if i.id != ind.id],
                  history=curation.history(catalog, ind.id, limit=20), may_curate=actor.may(Role.admin))
