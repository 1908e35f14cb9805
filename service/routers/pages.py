"""The home page: what this service is and where to go (no catalogue data: it needs no key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.deps import AuthDep
from service.web import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: AuthDep) -> HTMLResponse:
    # AuthDep: the top bar says who is signed in (and the page carries their CSRF token)
    return render(request, "home.html")
