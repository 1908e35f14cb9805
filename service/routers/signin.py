"""Browser sign-in with a key: GET/POST /signin, POST /signout.

The key typed into the form is checked like a bearer key; the browser then holds only a
random session id in an HttpOnly, SameSite=Strict cookie (its hash is stored in the
catalogue, with the CSRF token that writes from the pages must send back). Revoking the key
ends its sessions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reid import keys
from service.deps import SESSION_COOKIE, PipelineDep, SettingsDep, actor_for_key, protected
from service.web import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute URL or '//host' (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, pipeline: PipelineDep, settings: SettingsDep, next: str | None = None) -> HTMLResponse:
    return render(request, "signin.html", next=_safe_next(next), needed=protected(settings, pipeline.catalog))


@router.post("/signin", response_model=None)
def signin(request: Request, pipeline: PipelineDep, settings: SettingsDep,
           key: Annotated[str, Form(max_length=500)], next: Annotated[str, Form(max_length=2000)] = "/",
           ) -> Response:
    digest = keys.key_hash(key.strip())
    actor = actor_for_key(settings, pipeline.catalog, digest)
    if actor is None:
        return render(request, "signin.html", status_code=status.HTTP_401_UNAUTHORIZED, next=_safe_next(next),
                      needed=True, error="That key is not known here (or it was revoked).")
    sid, _ = keys.create_session(pipeline.catalog, digest)
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, sid, max_age=keys.SESSION_HOURS * 3600, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/signout", response_model=None)
def signout(request: Request, pipeline: PipelineDep) -> Response:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid and len(sid) <= 200:
        keys.end_session(pipeline.catalog, sid)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
