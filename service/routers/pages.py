"""The home page: what this service is and where to go next."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.deps import AuthDep, SettingsDep, may_see_locations
from service.web import render

router = APIRouter(include_in_schema=False)

#: Pages other routers may provide (review queue, catalogue browser): linked once they exist.
OPTIONAL_PAGES = (("/review", "Review queue", "decide the verdicts that need a person, photo beside evidence"),
                  ("/individuals", "Individuals", "the catalogue: every known animal and its photos"))


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: AuthDep, settings: SettingsDep) -> HTMLResponse:
    served = {getattr(r, "path", None) for r in request.app.routes}
    pages = [p for p in OPTIONAL_PAGES if p[0] in served]
    # How many animals a reserve knows is for the project's own people (the rule that guards
    # locations), not for anyone who can reach the page.
    counts = None
    if may_see_locations(actor, settings):
        pipeline = getattr(request.app.state, "pipeline", None)
        counts = pipeline.catalog.counts() if pipeline is not None else None
    return render(request, "home.html", pages=pages, counts=counts)
