"""Server-rendered pages: one Jinja2 environment, static files served from the package.

Every page extends `templates/base.html`; static files (CSS, one JS file per feature,
vendored libraries with their version in the name) live in `service/static/` and are
served by the app itself, so the pages work on a laptop with no network.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_URL = "/static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


@cache
def _static_hash(name: str) -> str:
    path = STATIC_DIR / name
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.is_file() else "missing"


def static_url(name: str) -> str:
    """`/static/NAME?h=<content hash>`: browsers may cache it for good, a new release busts it."""
    return f"{STATIC_URL}/{name}?h={_static_hash(name)}"


templates.env.globals["static_url"] = static_url


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page. `context` gets `request`, and `csrf_token` / `actor` when the request has them."""
    context.setdefault("actor", getattr(request.state, "actor", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    return templates.TemplateResponse(request, template, context, status_code=status_code)
